"""The calibration set: labelled copies of the user's own references, to fit the merge on.

Queries are edited like a :mod:`d2lv.synth.benchmark` set's; the layout is
:mod:`d2lv.synth.common`'s, with no ``references/`` images.

Copies alone teach the merge that any similarity is evidence. Near-duplicates teach it
otherwise: a share of the queries copy only one half of a reference (a crop, still a copy
of it), and the other half is written to ``near/`` as a pseudo-reference that the
calibration queries (only they) are searched and verified against. That half shows the
same scene without a shared pixel, so the (query, other half) pair is a near-duplicate that
is not a copy: a labelled hard negative.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from d2lv.errors import InputError
from d2lv.io.images import image_id
from d2lv.synth.benchmark import BACKDROP_USERS, BENCH_CATEGORY_COLUMNS, BenchQuery, render_bench_query
from d2lv.synth.common import (
    OVERLAPS_FILE,
    balanced,
    planned_files,
    query_id,
    rng_stream,
    save_jpeg,
    write_csv,
    write_set,
)
from d2lv.synth.families import FAMILIES
from d2lv.synth.photos import Source, Tile, load_source, split_in_two

#: The pseudo-references of a calibration set: the other halves of half-copied references.
NEAR_DIR = "near"


def near_id(i: int) -> str:
    return f"near{i:05d}"


@dataclass(frozen=True)
class CalibrationPlan:
    """The queries of a calibration set, and its pseudo-references (id -> the half of a reference)."""

    queries: list[BenchQuery]
    near: dict[str, Tile]


def planned_calibration_files(out: Path, n_queries: int) -> list[Path]:
    """The query files :func:`make_calibration` writes under ``out``."""
    return planned_files(out, 0, n_queries)["queries"]


def planned_near_files(out: Path, n_queries: int, near_share: float) -> list[Path]:
    """The pseudo-reference files :func:`make_calibration` writes under ``out``."""
    return [Path(out) / NEAR_DIR / f"{near_id(i)}.jpg" for i in range(_near_count(n_queries, near_share))]


def _near_count(n_queries: int, near_share: float) -> int:
    return int(round(n_queries * near_share))


def make_calibration(
    references: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    n_queries: int,
    families: Sequence[str] | None = None,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
    near_share: float = 0.0,
) -> None:
    """Labelled copies of the user's own references, to fit the merge on without user labels.

    Each query edits a reference drawn at random (or, for ``near_share`` of them, one half
    of it) with one family of :data:`d2lv.synth.families.FAMILIES` (each family equally
    often), pasting onto another reference where the family needs a backdrop.
    ``ground_truth.csv`` names the source by its image id (the file stem), so every other
    candidate of the query is a labelled negative, with the pseudo-reference of a half-copied
    query's other half among them. Pairs that share pixels without being the copy are listed
    in ``overlaps.csv`` for the fit to leave out: the query's backdrop (a reference too, so
    partly copied) and the pseudo-references cut from its source or backdrop (except its own
    other half). The layout is a benchmark's with no ``references/`` images, plus ``near/``.

    Raises:
        d2lv.errors.InputError: fewer than two references, ``n_queries < 1``, or a reference id
            that a pseudo-reference would take.
    """
    plan = plan_calibration(references, n_queries, families, seed, near_share)
    render = functools.partial(render_bench_query, max_side=max_side)
    load = functools.partial(load_source, max_side=max_side)
    write_set(Path(out), [], plan.queries, render, BENCH_CATEGORY_COLUMNS, load, seed, progress)
    (Path(out) / NEAR_DIR).mkdir(exist_ok=True)
    for path, tile in zip(planned_near_files(Path(out), n_queries, near_share), plan.near.values(), strict=True):
        save_jpeg(load(tile), path)
    write_csv(Path(out) / OVERLAPS_FILE, ["query_id", "reference_id"], overlapping_pairs(plan))


def overlapping_pairs(plan: CalibrationPlan) -> list[tuple[str, str]]:
    """(query, reference) pairs that share pixels without the query copying that reference."""
    pairs = []
    for i, query in enumerate(plan.queries):
        backdrop = image_id(query.background) if query.family in BACKDROP_USERS else None
        if backdrop:
            pairs.append((query_id(i), backdrop))
        shown = {query.reference_id, backdrop}
        pairs += [(query_id(i), near) for near, tile in plan.near.items()
                  if image_id(tile.path) in shown and not _other_half(query.source, tile)]
    return pairs


def _other_half(source: Source, tile: Tile) -> bool:
    return isinstance(source, Tile) and source.path == tile.path and source.part != tile.part


def plan_calibration(
    references: Sequence[str | os.PathLike], n_queries: int, families: Sequence[str] | None = None, seed: int = 0,
    near_share: float = 0.0,
) -> CalibrationPlan:
    """The queries :func:`make_calibration` renders (source, family and backdrop of each, in id order),
    and the pseudo-references of the half-copied ones."""
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
    queries: list[BenchQuery] = []
    near: dict[str, Tile] = {}
    halved = set(rng.permutation(n_queries)[: _near_count(n_queries, near_share)].tolist())
    for i, (s, family) in enumerate(zip(sources, balanced(chosen, n_queries, rng))):
        background = paths[(s + 1 + int(rng.integers(len(paths) - 1))) % len(paths)]
        source: Source = paths[s]
        if i in halved:
            source, near[near_id(len(near))] = split_in_two(paths[s], rng)
        queries.append(BenchQuery(source, "copy", family, reference_id=image_id(paths[s]), background=background))
    _check_near_ids(paths, near)
    return CalibrationPlan(queries, near)


def _check_near_ids(paths: Sequence[Path], near: dict[str, Tile]) -> None:
    taken = set(near) & {image_id(p) for p in paths}
    if taken:
        raise InputError(f"references named {sorted(taken)} take the ids of calibration pseudo-references; "
                         "rename them or set merge.near_duplicates: 0")
