"""The calibration set: labelled copies of the user's own references, to fit the merge on.

Queries are edited like a :mod:`d2lv.synth.benchmark` set's; the layout is
:mod:`d2lv.synth.common`'s, with no ``references/`` images.

Copies alone teach the merge that any similarity is evidence. Near-duplicates teach it
otherwise: a share of the queries copy only one half of a reference (a crop, still a copy
of it), and the other half is written to ``near/`` as a pseudo-reference that the
calibration queries (only they) are searched and verified against. That half shows the
same scene without a shared pixel, so the (query, other half) pair is a near-duplicate that
is not a copy: a labelled hard negative.

The user's references may all be photos, and then the merge would never see a copy of a smooth
image (a gradient, flat colour, paper) with no inlier. So another share of the queries copy a tile
of a synthetic graphic (:mod:`d2lv.synth.graphics`), written to ``near/`` as a pseudo-reference
beside the graphic's other tile, a near-duplicate negative of the same style.
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
    rng_stream,
    save_jpeg,
    write_csv,
    write_set,
)
from d2lv.synth.families import FAMILIES
from d2lv.synth.layout import (
    NEAR_DIR,
    graphic_count,
    graphic_id,
    near_count,
    near_id,
    planned_near_files,
    query_id,
)
from d2lv.synth.photos import Source, Tile, load_source, split_in_two
from d2lv.synth.tile_pictures import draw_graphics

#: Where the synthetic graphics are drawn (whole; only their tiles are pseudo-references).
GRAPHICS_DIR = "graphics"


@dataclass(frozen=True)
class CalibrationPlan:
    """The queries of a calibration set, and its pseudo-references (id -> the half of a reference)."""

    queries: list[BenchQuery]
    near: dict[str, Tile]


def make_calibration(
    references: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    n_queries: int,
    families: Sequence[str] | None = None,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
    near_share: float = 0.0,
    graphics_share: float = 0.0,
) -> None:
    """Labelled copies of the user's own references, to fit the merge on without user labels.

    Each query edits a reference drawn at random (or, for ``near_share`` of them, one half
    of it; for ``graphics_share``, a tile of a synthetic graphic) with one family of
    :data:`d2lv.synth.families.FAMILIES` (each family equally often), pasting onto another
    reference where the family needs a backdrop. ``ground_truth.csv`` names the source by its
    image id (the file stem), so every other candidate of the query is a labelled negative, with
    the pseudo-reference of a half-copied query's other half among them. Pairs that share pixels
    without being the copy are listed in ``overlaps.csv`` for the fit to leave out: the query's
    backdrop (a reference too, so partly copied) and the pseudo-references cut from its source or
    backdrop (except its own other half). The layout is a benchmark's with no ``references/``
    images, plus ``near/`` (and ``graphics/``, the graphics the tiles are cut from).

    Raises:
        d2lv.errors.InputError: fewer than two references, ``n_queries < 1``, or a reference id
            that a pseudo-reference would take.
    """
    out = Path(out)
    rng = rng_stream(seed, 0).spawn(1)[0]  # a stream of its own: neither the plan's nor a query's
    (out / GRAPHICS_DIR).mkdir(parents=True, exist_ok=True)
    graphics = draw_graphics(graphic_count(n_queries, near_share, graphics_share), rng, out / GRAPHICS_DIR,
                             max_side)
    plan = plan_calibration(references, n_queries, families, seed, near_share, graphics)
    render = functools.partial(render_bench_query, max_side=max_side)
    load = functools.partial(load_source, max_side=max_side)
    write_set(out, [], plan.queries, render, BENCH_CATEGORY_COLUMNS, load, seed, progress)
    (out / NEAR_DIR).mkdir(exist_ok=True)
    written = [out / NEAR_DIR / f"{name}.jpg" for name in plan.near]
    if sorted(written) != sorted(planned_near_files(out, n_queries, near_share, graphics_share)):
        raise AssertionError("the calibration plan's pseudo-references differ from the planned files")
    for path, tile in zip(written, plan.near.values()):
        save_jpeg(load(tile), path)
    write_csv(out / OVERLAPS_FILE, ["query_id", "reference_id"], overlapping_pairs(plan))


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
    near_share: float = 0.0, graphics: Sequence[Path] = (),
) -> CalibrationPlan:
    """The queries :func:`make_calibration` renders (source, family and backdrop of each, in id order),
    and the pseudo-references: the other halves of the half-copied references, and both tiles of each
    of ``graphics``, whose first tile the queries after the half copies copy."""
    paths = [Path(p) for p in references]
    if len(paths) < 2 or n_queries < 1:
        raise InputError(
            f"a calibration set needs at least 2 references and 1 query, got {len(paths)} and {n_queries}; "
            "with so few references use `merge.mode: sum` (and with a single one `descriptor.enabled: false`: the "
            "global branch's whitening needs 2 as well)"
        )
    rng = rng_stream(seed, 0)
    sources = rng.choice(len(paths), size=n_queries, replace=n_queries > len(paths))
    chosen = tuple(FAMILIES) if families is None else tuple(families)
    queries: list[BenchQuery] = []
    near: dict[str, Tile] = {}
    order = rng.permutation(n_queries)
    halved = set(order[: near_count(n_queries, near_share)].tolist())
    drawn = dict(zip(order[len(halved):len(halved) + len(graphics)].tolist(), range(len(graphics))))
    for i, (s, family) in enumerate(zip(sources, balanced(chosen, n_queries, rng))):
        background = paths[(s + 1 + int(rng.integers(len(paths) - 1))) % len(paths)]
        source: Source = paths[s]
        reference = image_id(paths[s])
        if i in halved:
            source, near[near_id(len(near))] = split_in_two(paths[s], rng)
        elif i in drawn:
            source, reference = Tile(graphics[drawn[i]], 0), graphic_id(drawn[i], 0)
        queries.append(BenchQuery(source, "copy", family, reference_id=reference, background=background))
    for j, graphic in enumerate(graphics):
        near.update({graphic_id(j, part): Tile(graphic, part) for part in (0, 1)})
    _check_near_ids(paths, near)
    return CalibrationPlan(queries, near)


def _check_near_ids(paths: Sequence[Path], near: dict[str, Tile]) -> None:
    taken = set(near) & {image_id(p) for p in paths}
    if taken:
        raise InputError(f"references named {sorted(taken)} take the ids of calibration pseudo-references; "
                         "rename them or set merge.near_duplicates: 0")
