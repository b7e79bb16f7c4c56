"""The copy-region detector's training set, synthesised from the user's references.

Positives put a reference inside a larger picture (:func:`paste_on_canvas`, or the placing
edit families of :mod:`d2lv.synth.families`), whose exact box becomes the label; negatives
are references that fill the frame, unedited or with full-frame edits, and carry no box.
:func:`synthesise_training_set` writes them in Ultralytics' one-class YOLO layout, for
:func:`d2lv.detect.train.train_detector`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io.images import Box, load_image, shrink_long_side
from d2lv.synth.edits import Edited, emoji, text
from d2lv.synth.families import Backdrop, apply_family

#: The detector's one class.
CLASS_NAME = "copy region"
#: Where a photo is put inside a larger picture, with the share of positives each gets. ``canvas``
#: is :func:`paste_on_canvas` (15-70% of the area, on a photo or a plain or gradient canvas); the
#: others are :func:`d2lv.synth.families.apply_family` families that report the photo's box.
POSITIVE_KINDS: dict[str, float] = {"canvas": 0.4, "paste": 0.15, "padding": 0.15, "screenshot": 0.15, "meme": 0.15}
#: Edits after which the photo still fills the frame: a negative, with no box. ``none``: unedited.
NEGATIVE_KINDS: tuple[str, ...] = ("none", "mild", "crop", "filters", "text", "emoji")
#: Chance that a positive also gets a text overlay, and an emoji overlay, on top.
OVERLAY_TEXT, OVERLAY_EMOJI = 0.4, 0.3
VAL_FRACTION = 0.1


def _gradient(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A linear gradient between two random colours, at a random angle."""
    width, height = size
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    start, end = (rng.integers(0, 256, size=3).astype(np.float32) for _ in range(2))
    pixels = start + t[..., None] * (end - start)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _canvas(photo: Image.Image, rng: np.random.Generator, backdrop: Backdrop) -> Image.Image:
    """Another reference (half the time), else a plain or gradient canvas 0.8-1.6x the photo's sides."""
    if rng.random() < 0.5:
        return backdrop().convert("RGB")
    size = tuple(max(16, round(side * rng.uniform(0.8, 1.6))) for side in photo.size)
    if rng.random() < 0.5:
        return Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, size=3)))
    return _gradient(size, rng)


def paste_on_canvas(
    photo: Image.Image, canvas: Image.Image, rng: np.random.Generator, area_range: tuple[float, float] = (0.15, 0.7)
) -> Edited:
    """``photo``, resized (aspect kept) to cover a share of ``canvas`` drawn from ``area_range``
    (less when its shape does not allow it), pasted at a random position, with its box."""
    cw, ch = canvas.size
    area = rng.uniform(*area_range)
    scale = min(math.sqrt(area * cw * ch / (photo.width * photo.height)), cw / photo.width, ch / photo.height)
    w, h = max(1, math.floor(photo.width * scale)), max(1, math.floor(photo.height * scale))
    x, y = int(rng.integers(cw - w + 1)), int(rng.integers(ch - h + 1))
    out = canvas.convert("RGB")
    out.paste(photo.resize((w, h), Image.LANCZOS), (x, y))
    return Edited(out, ("paste_on_canvas",), (x, y, x + w, y + h))


def _positive(photo: Image.Image, kind: str, rng: np.random.Generator, backdrop: Backdrop) -> Edited:
    if kind == "canvas":
        placed = paste_on_canvas(photo, _canvas(photo, rng, backdrop), rng)
    else:
        placed = apply_family(kind, photo, rng, backdrop)
    image, steps = placed.image, placed.steps
    for name, chance, overlay in (("text", OVERLAY_TEXT, text), ("emoji", OVERLAY_EMOJI, emoji)):
        if rng.random() < chance:
            image, steps = overlay(image, rng).convert("RGB"), (*steps, name)
    return Edited(image, steps, placed.box)


def _negative(photo: Image.Image, kind: str, rng: np.random.Generator) -> Edited:
    return Edited(photo, ()) if kind == "none" else apply_family(kind, photo, rng)


def yolo_label(box: Box, size: tuple[int, int]) -> str:
    """The YOLO label line of ``box`` (pixels, ``x1``/``y1`` exclusive) in an image of ``size``:
    class 0, then centre and size normalised to the image."""
    (x0, y0, x1, y1), (width, height) = box, size
    values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return "0 " + " ".join(f"{v:.6f}" for v in values) + "\n"


def _plan(n_images: int, negative_fraction: float, seed: int) -> tuple[list[str], np.ndarray]:
    """The kind of every image (drawn so the shares are exact) and which images go to validation."""
    rng = np.random.default_rng([seed, n_images])
    n_negative = round(n_images * negative_fraction)
    weights = np.array(list(POSITIVE_KINDS.values()))
    positives = rng.choice(list(POSITIVE_KINDS), size=n_images - n_negative, p=weights / weights.sum()).tolist()
    negatives = [NEGATIVE_KINDS[i % len(NEGATIVE_KINDS)] for i in range(n_negative)]
    kinds = [str(k) for k in rng.permutation(positives + negatives)]
    is_val = np.zeros(n_images, dtype=bool)
    is_val[rng.choice(n_images, size=max(1, round(n_images * VAL_FRACTION)), replace=False)] = True
    return kinds, is_val


def synthesise_training_set(
    reference_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_images: int,
    seed: int,
    image_size: int,
    negative_fraction: float = 0.25,
    progress: bool = True,
) -> Path:
    """Write a one-class YOLO training set made from the references, and return its ``data.yaml``.

    Each image starts from a random reference. Positives (``1 - negative_fraction`` of the
    images) place it inside a larger picture (:data:`POSITIVE_KINDS`), sometimes with text
    or emoji drawn on top, and are labelled with the box of the photo; negatives
    (:data:`NEGATIVE_KINDS`) leave it filling the frame and have an empty label file. About
    10% of the images go to the validation split. Images are JPEG with a long side of at
    most ``2 * image_size``. The same ``seed`` gives the same set.

    ``out_dir`` gets ``images/{train,val}``, ``labels/{train,val}`` (both replaced) and
    ``data.yaml``, in Ultralytics' layout with absolute paths.
    """
    import yaml

    if not reference_paths:
        raise InputError("no reference images to synthesise a detector training set from")
    if n_images < 2:
        raise InputError(f"need at least 2 training images (one for validation), got {n_images}")
    out = Path(out_dir).resolve()
    for folder in ("images", "labels"):
        shutil.rmtree(out / folder, ignore_errors=True)
        for split in ("train", "val"):
            (out / folder / split).mkdir(parents=True)
    max_side = 2 * image_size
    kinds, is_val = _plan(n_images, negative_fraction, seed)
    for i in tqdm(range(n_images), desc="detector training set", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, i])
        edited = synthesise_example(reference_paths, kinds[i], rng, max_side)
        image = shrink_long_side(edited.image, max_side)
        split = "val" if is_val[i] else "train"
        image.save(out / "images" / split / f"{i:06d}.jpg", quality=95)
        label = "" if edited.box is None else yolo_label(edited.box, edited.image.size)
        (out / "labels" / split / f"{i:06d}.txt").write_text(label)
    data = {"path": str(out), "train": "images/train", "val": "images/val", "names": {0: CLASS_NAME}}
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def synthesise_example(
    reference_paths: Sequence[str | os.PathLike], kind: str, rng: np.random.Generator, max_side: int
) -> Edited:
    """One training image of ``kind`` (a key of :data:`POSITIVE_KINDS` or one of :data:`NEGATIVE_KINDS`),
    before the final resize: a random reference, edited, with its box (None for negatives).
    References are first shrunk to a long side of at most ``max_side``."""

    def load(j: int) -> Image.Image:
        return shrink_long_side(Image.fromarray(load_image(reference_paths[j])), max_side)

    index = int(rng.integers(len(reference_paths)))
    photo = load(index)
    if kind in NEGATIVE_KINDS:
        return _negative(photo, kind, rng)

    def backdrop() -> Image.Image:
        """Another reference (the photo itself when it is the only one)."""
        others = len(reference_paths) - 1
        return load((index + 1 + int(rng.integers(others))) % len(reference_paths)) if others else photo

    return _positive(photo, kind, rng, backdrop)

