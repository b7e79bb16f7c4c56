"""A hard copy-detection benchmark: low-texture graphics and wallpapers, and edits that DISC21 has few of.

Built in :func:`d2lv.synth.benchmark.make_bench`'s layout (:mod:`d2lv.synth.common`), from three
sources: procedural graphics (:mod:`d2lv.synth.graphics`), digital wallpapers (a folder, e.g.
from ``benchmarks/fetch-wallpapers.sh``) and photos. Graphics and wallpapers are cut in two
tiles (:mod:`d2lv.synth.tile_pictures`): one is a reference, the other, for some of them, a hard
negative query (same style, no shared pixel). Copies are edited by the families of
:data:`d2lv.synth.hard_families.HARD_FAMILIES`, each equally often.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from d2lv.errors import InputError
from d2lv.synth.benchmark import (
    BENCH_CATEGORY_COLUMNS,
    HARD_NEGATIVE_EDITS,
    BenchQuery,
    collect_images,
    drop_near_duplicates,
    render_edited,
)
from d2lv.synth.common import balanced, check_counts, rng_stream, write_set
from d2lv.synth.edits import Edited
from d2lv.synth.families import Backdrop
from d2lv.synth.hard_families import HARD_FAMILIES, apply_hard_family
from d2lv.synth.layout import reference_id
from d2lv.synth.photos import Source, Tile, load_source, split_in_two, without_training_photos
from d2lv.synth.tile_pictures import tile_pictures, usable_wallpapers

#: Share of the copies that copy a photo; the others copy a graphic's or a wallpaper's tile.
PHOTO_COPY_SHARE = 1 / 3
#: Share of the references that are tiles, at least (more when the tile copies or the hard negatives need it).
TILE_REFERENCE_SHARE = 1 / 2
#: Share of the non-copies that are hard negatives: the other tile of a reference tile's picture.
HARD_NEGATIVE_SHARE = 1 / 2


@dataclass(frozen=True)
class HardCounts:
    """How many of each source and role a hard benchmark of ``n_references``, ``n_copies`` and
    ``n_noncopies`` images has."""

    n_references: int
    n_copies: int
    n_noncopies: int

    @property
    def hard_negatives(self) -> int:
        return math.floor(self.n_noncopies * HARD_NEGATIVE_SHARE)

    @property
    def tile_references(self) -> int:
        wanted = max(math.ceil(self.n_references * TILE_REFERENCE_SHARE), self.hard_negatives,
                     self.n_copies - math.floor(self.n_copies * PHOTO_COPY_SHARE))
        return min(self.n_references, wanted)

    @property
    def photo_references(self) -> int:
        return self.n_references - self.tile_references

    @property
    def photo_copies(self) -> int:
        return min(math.floor(self.n_copies * PHOTO_COPY_SHARE), self.photo_references)

    @property
    def tile_copies(self) -> int:
        return self.n_copies - self.photo_copies

    @property
    def noncopy_graphics(self) -> int:
        """Non-copies (not hard negatives) that are a tile of a fresh graphic; the rest are photos."""
        return (self.n_noncopies - self.hard_negatives) // 2

    @property
    def noncopy_photos(self) -> int:
        return self.n_noncopies - self.hard_negatives - self.noncopy_graphics

    def check(self, n_photos: int) -> None:
        """Raises InputError when the counts are invalid or ``n_photos`` photos are too few."""
        check_counts(self.n_references, self.n_copies, self.n_noncopies)
        if self.hard_negatives > self.tile_references:
            raise InputError(f"{self.hard_negatives} hard negatives need as many reference tiles, but there are only "
                             f"{self.n_references} references: ask for fewer non-copies or more references")
        needed = self.photo_references + self.noncopy_photos + 1
        if n_photos < needed:
            raise InputError(f"too few source photos: found {n_photos} (near-duplicates and the training split left "
                             f"out), need {needed}: {self.photo_references} references, {self.noncopy_photos} "
                             "non-copies and at least one more to put copies onto")


def make_hard_bench(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    wallpapers: str | os.PathLike | None = None,
    n_references: int = 1000,
    n_copies: int = 700,
    n_noncopies: int = 700,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
    training_photos: bool = False,
) -> None:
    """Build a hard copy-detection benchmark in :func:`d2lv.synth.benchmark.make_bench`'s layout.

    * References: tiles of graphics and wallpapers (at least half of them,
      :data:`TILE_REFERENCE_SHARE`), and photos (long side capped at ``max_side``).
    * ``n_copies`` copies of distinct references, a third of them (:data:`PHOTO_COPY_SHARE`) of
      photos, the rest of tiles; edited by the families of
      :data:`d2lv.synth.hard_families.HARD_FAMILIES` in equal numbers.
    * ``n_noncopies`` non-copies: half of them (:data:`HARD_NEGATIVE_SHARE`) hard negatives, the
      other tile of a copied tile's picture (``similar_reference_id`` names the reference tile),
      left alone or edited mildly (``none``, ``mild``); the rest photos and tiles of fresh graphics
      that are not references, edited by the same families as the copies.

    Photos: those under ``sources`` but the training split's (unless ``training_photos``), near-duplicates
    dropped. Pasted and photographed copies, and collages, go onto photos that are not references.
    Wallpapers: the images under ``wallpapers`` (None: graphics only), one per artwork
    (:func:`d2lv.synth.tile_pictures.usable_wallpapers`); graphics fill the rest of the reference tiles.

    Raises:
        InputError: too few photos for the requested sizes, or invalid sizes.
    """
    photos = collect_images([sources] if isinstance(sources, (str, os.PathLike)) else list(sources))
    if not training_photos:
        photos = without_training_photos(photos)
    photos = drop_near_duplicates(photos, progress=progress)
    counts = HardCounts(n_references, n_copies, n_noncopies)
    counts.check(len(photos))
    rng = rng_stream(seed, 0)
    walls = usable_wallpapers(wallpapers, max_side) if wallpapers is not None else []
    with tempfile.TemporaryDirectory(prefix="d2lv-graphics-") as folder:
        pictures, fresh = tile_pictures(walls, counts.tile_references, counts.noncopy_graphics, rng, Path(folder),
                                        max_side, progress)
        references, queries, backdrops = plan_hard_bench(photos, pictures, fresh, counts, rng)
        render = functools.partial(render_hard_query, backdrops=backdrops, max_side=max_side)
        write_set(Path(out), references, queries, render, BENCH_CATEGORY_COLUMNS,
                  functools.partial(load_source, max_side=max_side), seed, progress)


def plan_hard_bench(
    photos: Sequence[Path], pictures: Sequence[Path], fresh: Sequence[Path], counts: HardCounts,
    rng: np.random.Generator,
) -> tuple[list[Source], list[BenchQuery], list[Path]]:
    """The references (in id order), the queries (in id order) and the backdrop photos of a hard benchmark.

    ``pictures`` give the reference tiles (``counts.tile_references`` of them), ``fresh`` the
    non-copy graphics (``counts.noncopy_graphics``).
    """
    shuffled = [photos[i] for i in rng.permutation(len(photos))]
    photo_references, others = shuffled[: counts.photo_references], shuffled[counts.photo_references :]
    pairs = [split_in_two(picture, rng) for picture in pictures[: counts.tile_references]]
    copied_tiles = [int(i) for i in rng.choice(len(pairs), size=counts.tile_copies, replace=False)]
    copied_photos = rng.choice(len(photo_references), size=counts.photo_copies, replace=False)
    # hard negatives: the other tiles of copied tiles' pictures first
    uncopied = set(range(len(pairs))) - set(copied_tiles)
    paired = copied_tiles + [int(i) for i in rng.permutation(len(pairs)) if i in uncopied]
    references: list[Source] = [a for a, _ in pairs] + photo_references
    references = [references[i] for i in rng.permutation(len(references))]
    ids = {source: reference_id(i) for i, source in enumerate(references)}

    copied = [pairs[i][0] for i in copied_tiles] + [photo_references[i] for i in copied_photos]
    queries = [BenchQuery(source, "copy", family, reference_id=ids[source])
               for source, family in zip(copied, balanced(tuple(HARD_FAMILIES), counts.n_copies, rng))]
    noncopies = others[: counts.noncopy_photos] + [Tile(p, int(rng.integers(2))) for p in fresh]
    queries += [BenchQuery(source, "noncopy", family)
                for source, family in zip(noncopies, balanced(tuple(HARD_FAMILIES), len(noncopies), rng))]
    hard = [pairs[i] for i in paired[: counts.hard_negatives]]
    queries += [BenchQuery(other, "hard_negative", edit, similar_reference_id=ids[reference])
                for (reference, other), edit in zip(hard, balanced(HARD_NEGATIVE_EDITS, len(hard), rng))]
    return references, [queries[i] for i in rng.permutation(len(queries))], others


def render_hard_query(
    query: BenchQuery, rng: np.random.Generator, backdrops: Sequence[Path], max_side: int | None
) -> tuple[Image.Image, tuple[str, ...]]:
    """The query's image edited with its hard family (backdrops: photos from ``backdrops``), and its
    categories row."""

    def edit(image: Image.Image) -> Edited:
        supply = backdrop_supply(backdrops, query.source, rng.spawn(1)[0], max_side)
        return apply_hard_family(query.family, image, rng, supply)

    return render_edited(query, max_side, edit)


def backdrop_supply(pool: Sequence[Path], own: Source, rng: np.random.Generator, max_side: int | None) -> Backdrop:
    """A backdrop that gives a random photo of ``pool`` other than ``own`` at each call (a collage
    asks for several)."""
    candidates = [p for p in pool if p != own]

    def backdrop() -> Image.Image:
        if not candidates:
            raise InputError("no photo outside the references to put the copy onto: add source photos")
        return load_source(candidates[int(rng.integers(len(candidates)))], max_side)

    return backdrop
