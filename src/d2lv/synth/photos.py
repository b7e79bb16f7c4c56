"""The photos a benchmark is made of: outside the training split, whole or in two disjoint parts.

d2lv's shipped models (the copy-region detector, and any descriptor or merge defaults) learn only
from the training split: the photos of ``ukbench/`` and ``bsds500/train/``. A figure
measured on photos a model learnt from is not a result, so benchmarks leave those photos out
unless asked (:func:`without_training_photos`).

A :class:`Tile` is one of two non-overlapping parts of a photo: the same scene, no shared pixel.
One part as a reference and the other as a query make a near-duplicate that is not a copy, the
hardest negative a copy detector meets (other tiles of one wallpaper photo, other frames of one
shoot), which a benchmark without same-object photo groups builds this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from d2lv.errors import InputError
from d2lv.io.images import tile_box
from d2lv.synth.common import load_photo

#: Folders (as trailing path components) of the training split; benchmarks leave their photos out.
TRAINING_FOLDERS: tuple[tuple[str, ...], ...] = (("ukbench",), ("bsds500", "train"))


@dataclass(frozen=True)
class Tile:
    """Part ``part`` (:func:`d2lv.io.images.tile_box`) of the photo at ``path``."""

    path: Path
    part: int

    @property
    def name(self) -> str:
        return f"{self.path.name}#{self.part}"


#: Where a benchmark image comes from: a whole photo, or one of its tiles.
Source = Path | Tile


def is_training_photo(path: Path) -> bool:
    """Whether ``path`` lies in a folder of the training split (:data:`TRAINING_FOLDERS`)."""
    folders = Path(path).resolve().parent.parts
    return any(folders[len(folders) - len(f) :] == f for f in TRAINING_FOLDERS)


def without_training_photos(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without the training split's photos.

    Raises:
        ValueError: every photo is a training photo (the message says how to proceed).
    """
    kept = [p for p in paths if not is_training_photo(p)]
    if paths and not kept:
        folders = ", ".join("/".join(f) for f in TRAINING_FOLDERS)
        raise InputError(f"all {len(paths)} source photos are in the training split ({folders}), which d2lv's "
                         "shipped models learnt from; benchmark on other photos, or pass "
                         "--allow-training-photos to measure on them anyway")
    return kept


def split_in_two(path: Path, rng: np.random.Generator) -> tuple[Tile, Tile]:
    """The two tiles of the photo at ``path``, in random order."""
    first = int(rng.integers(2))
    return Tile(path, first), Tile(path, 1 - first)


def load_source(source: Source, max_side: int | None = None) -> Image.Image:
    """The RGB image of ``source``: the photo (long side capped at ``max_side``), or a tile of it."""
    if isinstance(source, Tile):
        photo = load_photo(source.path, max_side)
        return photo.crop(tile_box(*photo.size, source.part))
    return load_photo(source, max_side)
