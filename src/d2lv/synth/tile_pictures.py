"""The pictures cut into tiles by the hard benchmark (:mod:`d2lv.synth.hard_bench`): wallpapers and graphics.

A picture's two tiles (:class:`d2lv.synth.photos.Tile`, no shared pixel) become a reference and a
hard negative: same style, not a copy. That holds only when the tiles differ: two tiles of a flat
picture, of a gradient that runs across the cut, or of a mirror-symmetric picture are the same
image, or one is a flip of the other (and flips are copies). :func:`tiles_differ` rejects those.

Wallpapers come from a folder (see ``benchmarks/fetch-wallpapers.sh``), which may hold one artwork
in several formats (16:9 and 4:3, landscape and portrait, with and without a logo): only one of
them is used (:func:`usable_wallpapers`). Graphics (:mod:`d2lv.synth.graphics`) are drawn fresh,
saved as PNG files in a working folder, and redrawn when their tiles are too alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.io.images import shrink_long_side, tile_box
from d2lv.synth.benchmark import collect_images, drop_near_duplicates
from d2lv.synth.common import balanced, load_photo
from d2lv.synth.graphics import GRAPHIC_KINDS, draw_graphic

#: Two tiles differ when, as 64x64 thumbnails, at least 1% of their pixels differ by more than this
#: (0-255, largest over the channels) in each of the eight poses (rotations, mirrorings) of one.
#: Flat, across-the-cut gradient and mirror-symmetric pictures stay below 4; paper textures reach 6-28.
TILE_MIN_DIFFERENCE = 5.0
#: Wallpapers whose 16x16 thumbnails (stretched, any aspect) differ by less than this on average
#: (0-255) are taken for one artwork in two formats: the formats of one artwork in the Debian packages
#: differ by 12 or less. A few alike artworks (two soft radial glows) merge too, which costs one wallpaper.
WALLPAPER_MIN_DIFFERENCE = 15.0
#: Redraws of a graphic whose tiles are too alike, before giving up.
MAX_REDRAWS = 50

_POSES: tuple[Image.Transpose | None, ...] = (None, *Image.Transpose)


def _thumbnail(img: Image.Image, side: int) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((side, side), Image.BILINEAR), np.float32)


def tile_difference(img: Image.Image) -> float:
    """How much the two tiles of ``img`` differ, in their most alike pose (see :data:`TILE_MIN_DIFFERENCE`)."""
    first, second = (img.crop(tile_box(*img.size, part)) for part in (0, 1))
    reference = _thumbnail(first, 64)
    return min(float(np.percentile(np.abs(reference - _thumbnail(second if pose is None else second.transpose(pose),
                                                                    64)).max(axis=2), 99)) for pose in _POSES)


def tiles_differ(img: Image.Image) -> bool:
    return tile_difference(img) > TILE_MIN_DIFFERENCE


def usable_wallpapers(folder: str | Path, max_side: int | None) -> list[Path]:
    """The images under ``folder`` whose tiles differ, one per artwork, in file order.

    Near-duplicates (:func:`d2lv.synth.benchmark.drop_near_duplicates`) are dropped, and so is an
    image that looks like an earlier kept one (:data:`WALLPAPER_MIN_DIFFERENCE`).
    """
    kept: list[Path] = []
    looks: list[np.ndarray] = []
    for path in drop_near_duplicates(collect_images([folder])):
        img = load_photo(path, max_side)
        look = _thumbnail(img, 16)
        if tiles_differ(img) and all(np.abs(look - other).mean() >= WALLPAPER_MIN_DIFFERENCE for other in looks):
            kept.append(path)
            looks.append(look)
    return kept


def draw_graphics(n: int, rng: np.random.Generator, folder: Path, max_side: int | None,
                  progress: bool = False) -> list[Path]:
    """``n`` graphics of kinds in equal numbers (random order), whose tiles differ at ``max_side``, as PNG
    files in ``folder``.

    Raises:
        RuntimeError: a kind drew :data:`MAX_REDRAWS` pictures in a row with tiles too alike.
    """
    paths: list[Path] = []
    for i, kind in enumerate(tqdm(balanced(GRAPHIC_KINDS, n, rng), desc="drawing graphics", unit="img",
                                  disable=not progress)):
        img = _draw_with_distinct_tiles(kind, rng, max_side)
        paths.append(folder / f"{i:05d}-{kind}.png")
        img.save(paths[-1], compress_level=1)
    return paths


def _draw_with_distinct_tiles(kind: str, rng: np.random.Generator, max_side: int | None) -> Image.Image:
    for _ in range(MAX_REDRAWS):
        img = draw_graphic(kind, np.random.default_rng(int(rng.integers(2**63))))
        if tiles_differ(img if max_side is None else shrink_long_side(img, max_side)):
            return img
    raise RuntimeError(f"{MAX_REDRAWS} {kind} graphics in a row had two alike tiles")


def tile_pictures(wallpapers: Sequence[Path], n_references: int, n_noncopies: int, rng: np.random.Generator,
                  folder: Path, max_side: int | None, progress: bool = False) -> tuple[list[Path], list[Path]]:
    """Pictures to cut into tiles: ``n_references`` for reference tiles (the ``wallpapers``, in random
    order, then graphics) and ``n_noncopies`` graphics for non-copy queries; new graphics go to ``folder``."""
    walls = [wallpapers[i] for i in rng.permutation(len(wallpapers))][:n_references]
    graphics = draw_graphics(n_references - len(walls) + n_noncopies, rng, folder, max_side, progress)
    n_graphic_references = n_references - len(walls)
    return walls + graphics[:n_graphic_references], graphics[n_graphic_references:]
