"""What the builders of labelled sets share: the folder layout, ids, random streams, writing.

A set's folder holds::

    references/R000000.jpg ...   photos of the reference collection
    queries/Q00000.jpg ...       edited copies of references, and edited
                                 photos that are not in the collection
    ground_truth.csv             query_id,reference_id (empty: not a copy)
    categories.csv               query_id,kind,recipe,... (kind: copy|noncopy,
                                 and hard_negative in d2lv.synth.benchmark)

Four builders share this layout: :mod:`d2lv.synth.demo` (tiny, from scikit-image's
photos), :mod:`d2lv.synth.devset` (recipes of :data:`d2lv.synth.edits.RECIPES`),
:mod:`d2lv.synth.benchmark` (shaped like ISC 2021's DISC21: the edit families of
:data:`d2lv.synth.families.FAMILIES`, hard negatives, boxes of pasted copies) and
:mod:`d2lv.synth.calibration` (copies of the user's references, no ``references/``).

Ids are neutral and queries are shuffled, so no file name gives the answer
away. Everything is drawn from one seed and saved at a fixed JPEG quality:
the same seed gives byte-identical files. Query ``i`` is edited with its own
generator, derived from ``(seed, i)`` alone (:func:`rng_stream`), so queries can
be built in any order or in parallel.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io.images import ImageError, load_image, shrink_long_side
from d2lv.io.isc import CATEGORIES_FILE, GROUND_TRUTH_FILE, QUERY_DIR, REFERENCE_DIR
from d2lv.synth.layout import planned_files, query_id

#: Calibration sets: (query, reference) pairs that share pixels without being the copy (see
#: :func:`d2lv.synth.calibration.make_calibration`), left out of the merge's fit.
OVERLAPS_FILE = "overlaps.csv"
JPEG_QUALITY = 90

_ID_PATTERN = re.compile(r"^(Q\d{5}|R\d{6})\.jpg$")

#: Renders a planned query with its own generator: its image and its ``categories.csv`` row.
Render = Callable[[Any, np.random.Generator], tuple[Image.Image, tuple[str, ...]]]


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """Generator number ``stream`` of ``seed``: 0 plans the benchmark, ``1 + i`` edits query ``i``.

    The same as ``SeedSequence(seed).spawn(n)[stream]``, without spawning the others.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def balanced(names: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` of ``names``, each used equally often (up to one), in random order."""
    return [names[i % len(names)] for i in rng.permutation(n)]


def check_counts(n_references: int, n_copies: int, n_noncopies: int) -> None:
    if min(n_references, n_copies, n_noncopies) < 0:
        raise InputError("image counts must be non-negative")
    if n_copies > n_references:
        raise InputError(f"n_copies={n_copies} > n_references={n_references}: each copy needs its own reference")


def load_rgb(path: Path) -> np.ndarray:
    """The photo at ``path`` as ``HxWx3`` uint8 RGB (:func:`d2lv.io.images.load_image`); errors name the file."""
    try:
        return load_image(path)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err


def load_photo(path: Path, max_side: int | None = None) -> Image.Image:
    """The photo at ``path`` as RGB, its long side shrunk to ``max_side`` if longer."""
    img = Image.fromarray(load_rgb(path))
    return img if max_side is None else shrink_long_side(img, max_side)


def write_set(
    out: Path,
    references: Sequence[Path],
    queries: Sequence[Any],
    render: Render,
    columns: Sequence[str],
    load_reference: Callable[[Path], Image.Image],
    seed: int,
    progress: bool,
) -> None:
    """Write the images and both CSV files of a planned benchmark.

    Query ``i`` (with a ``reference_id`` attribute) is rendered with generator ``1 + i`` of
    ``seed``; ``render`` gives its image and its ``categories.csv`` row, whose ``columns``
    follow ``query_id``.
    """
    files = planned_files(out, len(references), len(queries))
    for folder in (out / REFERENCE_DIR, out / QUERY_DIR):
        _clear_images(folder)
    rows: list[tuple[str, ...]] = []
    with tqdm(
        total=len(references) + len(queries), desc=f"building {out.name}", unit="img", disable=not progress
    ) as bar:
        for src, dst in zip(references, files["references"]):
            save_jpeg(load_reference(src), dst)
            bar.update()
        for i, (query, dst) in enumerate(zip(queries, files["queries"])):
            image, row = render(query, rng_stream(seed, 1 + i))
            save_jpeg(image, dst)
            rows.append((query_id(i), *row))
            bar.update()
    write_csv(
        out / GROUND_TRUTH_FILE,
        ["query_id", "reference_id"],
        [(query_id(i), q.reference_id) for i, q in enumerate(queries)],
    )
    write_csv(out / CATEGORIES_FILE, ["query_id", *columns], rows)


def _clear_images(folder: Path) -> None:
    """Make ``folder`` exist without images left by an earlier, larger build."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if _ID_PATTERN.match(path.name):
            path.unlink()


def save_jpeg(img: Image.Image, path: Path) -> None:
    img.convert("RGB").save(path, format="JPEG", quality=JPEG_QUALITY)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
