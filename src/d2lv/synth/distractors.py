"""Distractor references for scale runs: new pictures made from photos no benchmark uses.

A scale run needs many more references than there are real photos here (a few thousand), and none of
them may be a copy of a query or of a true reference. Each distractor is a collage of 1 to 4 random
crops (30-100% of a photo's area) of photos from a separate pool (the training photos: UKBench,
BSDS500 train), each flipped at random, turned a few degrees, colour-jittered and scaled into its
cell. So no two distractors are the same image and none shares a pixel with a benchmark image. They
do share content with each other (the pool is smaller than the number of distractors), which makes
local recall harder, not easier: many references hold similar keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io import atomic
from d2lv.synth.common import load_rgb, rng_stream, save_jpeg

#: Canvas sizes (width, height) a distractor is drawn at: photo-like, landscape and portrait.
CANVASES = ((512, 384), (640, 480), (480, 480), (384, 512), (600, 400))
#: How a canvas is cut into cells for 1 to 4 crops: (x, y, width, height) as shares of the canvas.
LAYOUTS = {
    1: ((0, 0, 1, 1),),
    2: ((0, 0, 0.5, 1), (0.5, 0, 0.5, 1)),
    3: ((0, 0, 0.6, 1), (0.6, 0, 0.4, 0.5), (0.6, 0.5, 0.4, 0.5)),
    4: ((0, 0, 0.5, 0.5), (0.5, 0, 0.5, 0.5), (0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)),
}
MAX_ROTATION = 8.0  # degrees
JITTER = 0.25  # brightness, contrast and saturation factors in 1 +- JITTER


def distractor_id(i: int) -> str:
    return f"distractor{i:07d}"


def _random_crop(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop of 30-100% of the photo's area, at a random aspect within 2:1, flipped, turned and jittered."""
    w, h = photo.size
    area = rng.uniform(0.3, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    cw, ch = min(w, round(np.sqrt(area * aspect))), min(h, round(np.sqrt(area / aspect)))
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    crop = photo.crop((int(x), int(y), int(x + cw), int(y + ch)))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    crop = crop.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), resample=Image.BILINEAR, expand=False)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        crop = enhance(crop).enhance(rng.uniform(1 - JITTER, 1 + JITTER))
    return crop


def draw_distractor(photos: Sequence[Path], seed: int, i: int) -> Image.Image:
    """Distractor ``i`` of ``seed``: a collage of 1-4 crops of random ``photos`` (its own generator)."""
    rng = rng_stream(seed, 1 + i)
    width, height = CANVASES[rng.integers(len(CANVASES))]
    canvas = Image.new("RGB", (width, height))
    for x, y, w, h in LAYOUTS[int(rng.integers(1, 5))]:
        box = (round(x * width), round(y * height), round((x + w) * width), round((y + h) * height))
        photo = Image.fromarray(load_rgb(photos[rng.integers(len(photos))]))
        canvas.paste(ImageOps.fit(_random_crop(photo, rng), (box[2] - box[0], box[3] - box[1])), box[:2])
    return canvas


#: Distractors drawn by one task of the process pool.
CHUNK = 128


def _write(photos: Sequence[Path], seed: int, out: Path, start: int, stop: int) -> int:
    """Write distractors ``start`` to ``stop - 1`` (those already written are kept)."""
    for i in range(start, stop):
        path = out / f"{distractor_id(i)}.jpg"
        if not path.exists():
            with atomic.replacing(path) as partial:
                save_jpeg(draw_distractor(photos, seed, i), partial)
    return stop - start


def make_distractors(photos: Sequence[Path], out: Path, n: int, seed: int = 0, workers: int = 1,
                     progress: bool = True) -> list[Path]:
    """Write ``n`` distractors into ``out`` (those already there are kept: the same seed draws the same ones)."""
    if not photos:
        raise InputError("no photos to make distractors from: pass the training photos (e.g. ukbench/ and "
                         "bsds500/train/), which no benchmark draws from")
    out.mkdir(parents=True, exist_ok=True)
    photos = sorted(photos)
    with ProcessPoolExecutor(max(1, workers)) as pool, tqdm(total=n, desc="distractors", unit="img",
                                                            disable=not progress) as bar:
        jobs = [pool.submit(_write, photos, seed, out, start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)]
        for job in jobs:
            bar.update(job.result())
    return [out / f"{distractor_id(i)}.jpg" for i in range(n)]
