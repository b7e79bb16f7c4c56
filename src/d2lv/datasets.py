"""Copy-detection benchmarks built from folders of real photos.

A benchmark folder holds::

    references/R000000.jpg ...   photos of the reference collection
    queries/Q00000.jpg ...       edited copies of references, and edited
                                 photos that are not in the collection
    ground_truth.csv             query_id,reference_id (empty: not a copy)
    categories.csv               query_id,kind,recipe (kind: copy|noncopy)

Ids are neutral and queries are shuffled, so no file name gives the answer
away. Everything is drawn from one seed and saved at a fixed JPEG quality:
the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.edits import RECIPES, random_edit
from d2lv.images import find_images, load_image

QUERY_DIR = "queries"
REFERENCE_DIR = "references"
GROUND_TRUTH_FILE = "ground_truth.csv"
CATEGORIES_FILE = "categories.csv"
JPEG_QUALITY = 90

#: Real photographs shipped in ``skimage.data`` (synthetic, binary, near-duplicate
#: and nearly textureless images are left out).
DEMO_PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
DEMO_REFERENCES = 8
DEMO_COPIES = 8
DEMO_NONCOPIES = 4

_ID_PATTERN = re.compile(r"^(Q\d{5}|R\d{6})\.jpg$")


@dataclass(frozen=True)
class _Query:
    source: Path
    reference_id: str  # "" for a non-copy
    primary: str  # edit recipe


def _query_id(i: int) -> str:
    return f"Q{i:05d}"


def _reference_id(i: int) -> str:
    return f"R{i:06d}"


def planned_files(out: Path, n_references: int, n_queries: int) -> dict[str, list[Path]]:
    """The image files a benchmark of this size has under ``out``."""
    return {
        "queries": [Path(out) / QUERY_DIR / f"{_query_id(i)}.jpg" for i in range(n_queries)],
        "references": [Path(out) / REFERENCE_DIR / f"{_reference_id(i)}.jpg" for i in range(n_references)],
    }


def planned_demo_files(out: Path) -> dict[str, list[Path]]:
    """The image files :func:`make_demo` writes, without writing anything."""
    return planned_files(out, DEMO_REFERENCES, DEMO_COPIES + DEMO_NONCOPIES)


def make_devset(
    source: Path,
    out: Path,
    n_references: int = 300,
    n_copies: int = 150,
    n_noncopies: int = 150,
    seed: int = 0,
) -> None:
    """Build a development benchmark from the photos under ``source`` (recursively).

    Raises:
        ValueError: ``source`` has fewer than ``n_references + n_noncopies``
            images, or ``n_copies > n_references``.
    """
    _build(list(find_images(source)), Path(out), n_references, n_copies, n_noncopies, seed)


def make_demo(out: Path, seed: int = 0) -> None:
    """Build a tiny benchmark from the photos shipped with scikit-image (no download)."""
    _build(_demo_photos(), Path(out), DEMO_REFERENCES, DEMO_COPIES, DEMO_NONCOPIES, seed)


def _demo_photos() -> list[Path]:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in DEMO_PHOTOS if (folder / name).is_file()]


def _balanced_recipes(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` recipe names, each used equally often (up to one), in random order."""
    names = list(RECIPES)
    return [names[i % len(names)] for i in rng.permutation(n)]


def _plan(
    sources: Sequence[Path], n_references: int, n_copies: int, n_noncopies: int, rng: np.random.Generator
) -> tuple[list[Path], list[_Query]]:
    """Choose the reference photos and the queries, in id order."""
    if min(n_references, n_copies, n_noncopies) < 0:
        raise ValueError("image counts must be non-negative")
    if n_copies > n_references:
        raise ValueError(f"n_copies={n_copies} > n_references={n_references}: each copy needs its own reference")
    needed = n_references + n_noncopies
    if len(sources) < needed:
        raise ValueError(
            f"too few source images: found {len(sources)}, need {needed} "
            f"({n_references} references + {n_noncopies} non-copy queries)"
        )
    order = rng.permutation(len(sources))
    references = [sources[i] for i in order[:n_references]]
    noncopy_sources = [sources[i] for i in order[n_references:needed]]
    copied = rng.choice(n_references, size=n_copies, replace=False)
    queries = [
        _Query(references[r], _reference_id(r), recipe)
        for r, recipe in zip(copied, _balanced_recipes(n_copies, rng))
    ] + [_Query(src, "", recipe) for src, recipe in zip(noncopy_sources, _balanced_recipes(n_noncopies, rng))]
    return references, [queries[i] for i in rng.permutation(len(queries))]


def _build(
    sources: Sequence[Path], out: Path, n_references: int, n_copies: int, n_noncopies: int, seed: int
) -> None:
    plan_seed, *edit_seeds = np.random.SeedSequence(seed).spawn(1 + n_copies + n_noncopies)
    references, queries = _plan(sources, n_references, n_copies, n_noncopies, np.random.default_rng(plan_seed))
    files = planned_files(out, len(references), len(queries))
    for folder in (out / REFERENCE_DIR, out / QUERY_DIR):
        _clear_images(folder)
    recipes: list[str] = []
    with tqdm(total=len(references) + len(queries), desc=f"building {out.name}", unit="img") as bar:
        for src, dst in zip(references, files["references"]):
            _save(Image.fromarray(load_image(src)), dst)
            bar.update()
        for query, dst, edit_seed in zip(queries, files["queries"], edit_seeds):
            rng = np.random.default_rng(edit_seed)
            edited, applied = random_edit(Image.fromarray(load_image(query.source)), rng, primary=query.primary)
            _save(edited, dst)
            recipes.append("+".join(applied))
            bar.update()
    query_ids = [_query_id(i) for i in range(len(queries))]
    _write_csv(
        out / GROUND_TRUTH_FILE,
        ["query_id", "reference_id"],
        [(qid, q.reference_id) for qid, q in zip(query_ids, queries)],
    )
    _write_csv(
        out / CATEGORIES_FILE,
        ["query_id", "kind", "recipe"],
        [
            (qid, "copy" if q.reference_id else "noncopy", recipe)
            for qid, q, recipe in zip(query_ids, queries, recipes)
        ],
    )


def _clear_images(folder: Path) -> None:
    """Make ``folder`` exist without images left by an earlier, larger build."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if _ID_PATTERN.match(path.name):
            path.unlink()


def _save(img: Image.Image, path: Path) -> None:
    img.convert("RGB").save(path, format="JPEG", quality=JPEG_QUALITY)


def _write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
