"""The calibration set: labelled copies of the user's own references, to fit the merge on.

Queries are edited like a :mod:`d2lv.synth.benchmark` set's; the layout is
:mod:`d2lv.synth.common`'s, with no ``references/`` images.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from d2lv.errors import InputError
from d2lv.io.images import image_id
from d2lv.synth.benchmark import BACKDROP_USERS, BENCH_CATEGORY_COLUMNS, BenchQuery, render_bench_query
from d2lv.synth.common import (
    BACKDROPS_FILE,
    balanced,
    load_photo,
    planned_files,
    query_id,
    rng_stream,
    write_csv,
    write_set,
)
from d2lv.synth.families import FAMILIES


def planned_calibration_files(out: Path, n_queries: int) -> list[Path]:
    """The query files :func:`make_calibration` writes under ``out``."""
    return planned_files(out, 0, n_queries)["queries"]


def make_calibration(
    references: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    n_queries: int,
    families: Sequence[str] | None = None,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Labelled copies of the user's own references, to fit the merge on without user labels.

    Each query edits a reference drawn at random with one family of
    :data:`d2lv.synth.families.FAMILIES` (each family equally often), pasting onto another
    reference where the family needs a backdrop. ``ground_truth.csv`` names the source
    by its image id (the file stem), so every other candidate of the query is a labelled
    negative, except the query's backdrop: a reference too, so partly copied, it is listed
    in ``backdrops.csv`` for the fit to leave out. The layout is a benchmark's with no
    ``references/`` images.

    Raises:
        ValueError: fewer than two references, or ``n_queries < 1``.
    """
    queries = plan_calibration(references, n_queries, families, seed)
    render = functools.partial(render_bench_query, max_side=max_side)
    write_set(Path(out), [], queries, render, BENCH_CATEGORY_COLUMNS, functools.partial(load_photo, max_side=max_side),
              seed, progress)
    write_csv(Path(out) / BACKDROPS_FILE, ["query_id", "reference_id"],
              [(query_id(i), image_id(q.background)) for i, q in enumerate(queries) if q.family in BACKDROP_USERS])


def plan_calibration(
    references: Sequence[str | os.PathLike], n_queries: int, families: Sequence[str] | None = None, seed: int = 0
) -> list[BenchQuery]:
    """The queries :func:`make_calibration` renders: source, family and backdrop of each, in id order."""
    paths = [Path(p) for p in references]
    if len(paths) < 2 or n_queries < 1:
        raise InputError(
            f"a calibration set needs at least 2 references and 1 query, got {len(paths)} and {n_queries}; "
            "with so few references use `merge.mode: sum` (and with a single one `global.enabled: false`: the "
            "global branch's whitening needs 2 as well)"
        )
    rng = rng_stream(seed, 0)
    sources = rng.choice(len(paths), size=n_queries, replace=n_queries > len(paths))
    chosen = tuple(FAMILIES) if families is None else tuple(families)
    queries = []
    for s, family in zip(sources, balanced(chosen, n_queries, rng)):
        background = paths[(s + 1 + int(rng.integers(len(paths) - 1))) % len(paths)]
        queries.append(BenchQuery(paths[s], "copy", family, reference_id=image_id(paths[s]), background=background))
    return queries
