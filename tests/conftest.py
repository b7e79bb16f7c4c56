"""Shared fixtures: real photographs shipped with scikit-image."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage import data

from d2lv.synth import benchmark


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)  # session-wide: no test may alter another's photo
    return array


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB photo."""
    return _readonly(data.astronaut())


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """300x451 RGB photo (not square, so a rotation changes its shape)."""
    return _readonly(data.chelsea())


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """400x600 RGB photo."""
    return _readonly(data.coffee())


def save_photos(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """scikit-image photos ``names`` as JPEG files in ``folder``."""
    paths = [folder / f"{name}.jpg" for name in names]
    for name, path in zip(names, paths):
        Image.fromarray(getattr(data, name)()).save(path, quality=90)
    return paths


BENCH_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                "camera", "coins", "brick", "gravel", "grass")
#: Photos cut into fake UKBench groups: four crops of one photo = four photos of one object.
UKBENCH_PHOTOS = ("retina", "hubble_deep_field", "moon")
#: Steps (see ``categories.csv``) that place the photo inside a larger picture, so come with a box.


def _quadrants(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    return [img.crop((x, y, x + w // 2, y + h // 2)).resize((160, 120)) for x, y in
            [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]]


@pytest.fixture(scope="module")
def bench_sources(tmp_path_factory) -> list[Path]:
    """Two folders: 40 small photos plus one large one, and 12 ukbench-style files (3 objects)."""
    photos, ukbench = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("ukbench")
    for name in BENCH_PHOTOS:
        for i, crop in enumerate(_quadrants(Image.fromarray(getattr(skimage.data, name)()))):
            crop.save(photos / f"{name}_{i}.jpg")
    Image.fromarray(skimage.data.astronaut()).resize((1200, 1000)).save(photos / "large.png")
    for g, name in enumerate(UKBENCH_PHOTOS):
        for i, crop in enumerate(_quadrants(Image.fromarray(getattr(skimage.data, name)()))):
            crop.save(ukbench / f"ukbench{4 * g + i:05d}.jpg")
    return [photos, ukbench]


@pytest.fixture(scope="module")
def tiny_bench(bench_sources, tmp_path_factory) -> Path:
    """A complete small benchmark: 16 references, 11 copies, 11 non-copies, hard negatives."""
    out = tmp_path_factory.mktemp("bench")
    benchmark.make_bench(bench_sources, out, n_references=16, n_copies=11, n_noncopies=11, progress=False)
    return out


def jpeg_roundtrip(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    buf.seek(0)
    with Image.open(buf) as decoded:
        decoded.load()
        return decoded


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def written_files(out: Path) -> dict[str, list[Path]]:
    return {
        "queries": sorted((out / "queries").iterdir()),
        "references": sorted((out / "references").iterdir()),
    }
