"""Copy-detection benchmarks built from folders of real photos.

A benchmark folder holds::

    references/R000000.jpg ...   photos of the reference collection
    queries/Q00000.jpg ...       edited copies of references, and edited
                                 photos that are not in the collection
    ground_truth.csv             query_id,reference_id (empty: not a copy)
    categories.csv               query_id,kind,recipe,... (kind: copy|noncopy,
                                 and hard_negative in :func:`make_bench`)

Three builders share this layout: :func:`make_demo` (tiny, from scikit-image's
photos), :func:`make_devset` (recipes of :data:`d2lv.synth.edits.RECIPES`) and
:func:`make_bench` (shaped like ISC 2021's DISC21: the edit families of
:data:`d2lv.synth.edits.FAMILIES`, hard negatives, boxes of pasted copies).

Ids are neutral and queries are shuffled, so no file name gives the answer
away. Everything is drawn from one seed and saved at a fixed JPEG quality:
the same seed gives byte-identical files. Query ``i`` is edited with its own
generator, derived from ``(seed, i)`` alone, so queries can be built in any
order or in parallel.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.bench import pdq
from d2lv.io.images import ImageError, find_images, image_id, load_image, shrink_long_side
from d2lv.synth.edits import FAMILIES, RECIPES, Edited, apply_family, random_edit

QUERY_DIR = "queries"
REFERENCE_DIR = "references"
GROUND_TRUTH_FILE = "ground_truth.csv"
CATEGORIES_FILE = "categories.csv"
#: Calibration sets: the reference each query was pasted onto or framed with, if any.
BACKDROPS_FILE = "backdrops.csv"
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

#: UKBench-style file names: ``ukbench00000``-``ukbench00003`` are four photos of one object.
SAME_OBJECT_PATTERN = re.compile(r"ukbench(\d{5})", re.IGNORECASE)
SAME_OBJECT_GROUP_SIZE = 4

#: ``recipe`` of a hard negative left unedited.
NO_EDIT = "none"
#: How hard negatives are edited: lightly, or not at all.
HARD_NEGATIVE_EDITS: tuple[str, ...] = ("mild", NO_EDIT)
#: Families that need a photo outside the references to paste onto.
BACKDROP_FAMILIES: tuple[str, ...] = ("paste", "combo")
#: Families that can use such a photo (image-border padding).
_BACKDROP_USERS: tuple[str, ...] = (*BACKDROP_FAMILIES, "padding")

BENCH_CATEGORY_COLUMNS: tuple[str, ...] = (
    "kind",
    "recipe",
    "steps",
    "similar_reference_id",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
)


@dataclass(frozen=True)
class _Query:
    """A query of :func:`make_devset` / :func:`make_demo`."""

    source: Path
    reference_id: str  # "" for a non-copy
    primary: str  # edit recipe


@dataclass(frozen=True)
class _BenchQuery:
    """A query of :func:`make_bench`."""

    source: Path
    kind: str  # copy | noncopy | hard_negative
    family: str  # edit family, or NO_EDIT
    reference_id: str = ""  # the reference it copies ("" unless kind == "copy")
    similar_reference_id: str = ""  # hard negatives: the reference showing the same object
    background: Path | None = None  # photo to paste onto, for families that can use one


def _query_id(i: int) -> str:
    return f"Q{i:05d}"


def _reference_id(i: int) -> str:
    return f"R{i:06d}"


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Generator number ``stream`` of ``seed``: 0 plans the benchmark, ``1 + i`` edits query ``i``.

    The same as ``SeedSequence(seed).spawn(n)[stream]``, without spawning the others.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


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
    progress: bool = True,
) -> None:
    """Build a development benchmark from the photos under ``source`` (recursively).

    Raises:
        ValueError: ``source`` has fewer than ``n_references + n_noncopies``
            images, or ``n_copies > n_references``.
    """
    _build(list(find_images(source)), Path(out), n_references, n_copies, n_noncopies, seed, progress)


def make_demo(out: Path, seed: int = 0, progress: bool = True) -> None:
    """Build a tiny benchmark from the photos shipped with scikit-image (no download)."""
    _build(_demo_photos(), Path(out), DEMO_REFERENCES, DEMO_COPIES, DEMO_NONCOPIES, seed, progress)


def _demo_photos() -> list[Path]:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in DEMO_PHOTOS if (folder / name).is_file()]


def _balanced(names: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` of ``names``, each used equally often (up to one), in random order."""
    return [names[i % len(names)] for i in rng.permutation(n)]


def _check_counts(n_references: int, n_copies: int, n_noncopies: int) -> None:
    if min(n_references, n_copies, n_noncopies) < 0:
        raise ValueError("image counts must be non-negative")
    if n_copies > n_references:
        raise ValueError(f"n_copies={n_copies} > n_references={n_references}: each copy needs its own reference")


def _plan(
    sources: Sequence[Path], n_references: int, n_copies: int, n_noncopies: int, rng: np.random.Generator
) -> tuple[list[Path], list[_Query]]:
    """Choose the reference photos and the queries of a dev set, in id order."""
    _check_counts(n_references, n_copies, n_noncopies)
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
    names = list(RECIPES)
    queries = [
        _Query(references[r], _reference_id(r), recipe)
        for r, recipe in zip(copied, _balanced(names, n_copies, rng))
    ] + [_Query(src, "", recipe) for src, recipe in zip(noncopy_sources, _balanced(names, n_noncopies, rng))]
    return references, [queries[i] for i in rng.permutation(len(queries))]


def _build(
    sources: Sequence[Path],
    out: Path,
    n_references: int,
    n_copies: int,
    n_noncopies: int,
    seed: int,
    progress: bool = True,
) -> None:
    references, queries = _plan(sources, n_references, n_copies, n_noncopies, _rng(seed, 0))
    _write(out, references, queries, _render_devset_query, ("kind", "recipe"), _load, seed, progress)


def _render_devset_query(query: _Query, rng: np.random.Generator) -> tuple[Image.Image, tuple[str, ...]]:
    edited, applied = random_edit(_load(query.source), rng, primary=query.primary)
    return edited, ("copy" if query.reference_id else "noncopy", "+".join(applied))


# --- DISC21-style benchmark ----------------------------------------------------------


def make_bench(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    n_references: int = 1000,
    n_copies: int = 1000,
    n_noncopies: int = 1000,
    n_hard_negatives: int | None = None,
    families: Sequence[str] | None = None,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Build a benchmark shaped like ISC 2021's DISC21 from folders of photos.

    * ``n_references`` photos, long side capped at ``max_side``, make the collection.
    * ``n_copies`` queries each copy a different reference, edited by one family of
      :data:`d2lv.synth.edits.FAMILIES` (each family equally often).
    * ``n_noncopies`` queries are photos outside the references, edited the same way.
    * ``n_hard_negatives`` queries show an object that a reference also shows, in another
      photo (UKBench-style files ``ukbenchNNNNN``, four per object): not copies, edited
      lightly (``mild``) or not at all (``none``).

    ``categories.csv`` has ``query_id,kind,recipe,steps,similar_reference_id,box_x0,box_y0,
    box_x1,box_y1``: ``kind`` is copy, noncopy or hard_negative; ``recipe`` the family;
    ``steps`` the elementary edits joined by ``+``; ``similar_reference_id`` the reference
    of a hard negative's object; the box (pixels, ``x1``/``y1`` exclusive) is where the
    photo lies in the query when a family placed it in a larger picture (padding, paste,
    screenshot, meme), empty otherwise.

    Near-duplicate source photos are dropped first (:func:`drop_near_duplicates`), and
    photos of one object are never split between the references and the other roles,
    except for the hard-negative pairs: a non-copy never shows a reference's picture.
    Pasted photos go onto photos that are not references.

    Args:
        sources: a folder, or several, searched recursively.
        n_hard_negatives: None: as many as the sources allow, up to a fifth of
            ``n_noncopies``.
        families: names from :data:`d2lv.synth.edits.FAMILIES`; None: all of them.
        max_side: cap on the long side of every photo before editing (None: no cap).

    Raises:
        ValueError: too few source images (or same-object groups) for the requested
            sizes, ``n_copies > n_references``, or an unknown family.
    """
    folders = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    found = _collect_images(folders)
    distinct = drop_near_duplicates(found, progress=progress)
    references, queries = _plan_bench(
        distinct,
        n_references,
        n_copies,
        n_noncopies,
        n_hard_negatives,
        tuple(FAMILIES) if families is None else tuple(families),
        _rng(seed, 0),
        n_dropped=len(found) - len(distinct),
    )
    load = functools.partial(_load, max_side=max_side)
    render = functools.partial(_render_bench_query, max_side=max_side)
    _write(Path(out), references, queries, render, BENCH_CATEGORY_COLUMNS, load, seed, progress)


def planned_calibration_files(out: Path, n_queries: int) -> list[Path]:
    """The query files :func:`make_calibration` writes under ``out``."""
    return planned_files(out, 0, n_queries)["queries"]


def make_calibration(
    references: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    n_queries: int,
    families: Sequence[str] | None = None,
    max_side: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Labelled copies of the user's own references, to fit the merge on without user labels.

    Each query edits a reference drawn at random with one family of
    :data:`d2lv.synth.edits.FAMILIES` (each family equally often), pasting onto another
    reference where the family needs a backdrop. ``ground_truth.csv`` names the source
    by its image id (the file stem), so every other candidate of the query is a labelled
    negative, except the query's backdrop: a reference too, so partly copied, it is listed
    in ``backdrops.csv`` for the fit to leave out. The layout is a benchmark's with no
    ``references/`` images.

    Raises:
        ValueError: fewer than two references, or ``n_queries < 1``.
    """
    queries = plan_calibration(references, n_queries, families, seed)
    render = functools.partial(_render_bench_query, max_side=max_side)
    _write(Path(out), [], queries, render, BENCH_CATEGORY_COLUMNS, functools.partial(_load, max_side=max_side),
           seed, progress)
    _write_csv(Path(out) / BACKDROPS_FILE, ["query_id", "reference_id"],
               [(_query_id(i), image_id(q.background)) for i, q in enumerate(queries) if q.family in _BACKDROP_USERS])


def plan_calibration(
    references: Sequence[str | os.PathLike], n_queries: int, families: Sequence[str] | None = None, seed: int = 0
) -> list[_BenchQuery]:
    """The queries :func:`make_calibration` renders: source, family and backdrop of each, in id order."""
    paths = [Path(p) for p in references]
    if len(paths) < 2 or n_queries < 1:
        raise ValueError(
            f"a calibration set needs at least 2 references and 1 query, got {len(paths)} and {n_queries}; "
            "with so few references use `merge.mode: sum`"
        )
    rng = _rng(seed, 0)
    sources = rng.choice(len(paths), size=n_queries, replace=n_queries > len(paths))
    chosen = tuple(FAMILIES) if families is None else tuple(families)
    queries = []
    for s, family in zip(sources, _balanced(chosen, n_queries, rng)):
        background = paths[(s + 1 + int(rng.integers(len(paths) - 1))) % len(paths)]
        queries.append(_BenchQuery(paths[s], "copy", family, reference_id=image_id(paths[s]), background=background))
    return queries


def _collect_images(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """The images under ``folders``, in order, each file once."""
    seen: set[Path] = set()
    found: list[Path] = []
    for folder in folders:
        for path in find_images(folder):
            if (key := path.resolve()) not in seen:
                seen.add(key)
                found.append(path)
    return found


#: Photos whose PDQ hashes (256 bits, :mod:`d2lv.bench.pdq`) differ in at most this many bits are
#: taken for one picture. PDQ's usual matching threshold (31) catches re-encoded, resized and
#: recoloured copies but not reframed ones: cropping 2% off each side already costs 30-50 bits,
#: and UKBench's ukbench00823/ukbench00911 (one photo, reframed) are 68 bits apart. Unrelated
#: photos of the shared data (5 million pairs) come no closer than 82 bits, different photos of
#: one UKBench object no closer than 100, a stereo pair (skimage's motorcycle) 84.
NEAR_DUPLICATE_BITS = 72


def drop_near_duplicates(
    paths: Sequence[Path], max_distance: int = NEAR_DUPLICATE_BITS, progress: bool = False
) -> list[Path]:
    """``paths`` without the photos that nearly duplicate an earlier one, in order.

    Two photos nearly duplicate each other when their PDQ hashes (:mod:`d2lv.bench.pdq`) differ in
    at most ``max_distance`` of 256 bits: the same picture re-encoded, resized, recoloured
    slightly or reframed by a few pixels; not crops or heavier edits. A photo is dropped when
    it nearly duplicates an earlier photo that is kept.

    Raises:
        d2lv.io.images.ImageError: a file is not a usable image (the message names it).
    """
    paths = list(paths)
    if len(paths) < 2:
        return paths
    codes = np.zeros((len(paths), pdq.HASH_BYTES), np.uint8)
    quality = np.zeros(len(paths), np.int32)
    for k, path in enumerate(tqdm(paths, desc="hashing sources", unit="img", disable=not progress)):
        codes[k], quality[k] = pdq.hash_image(_load_rgb(path))
    index = pdq.build_index(pdq.PdqHashes([str(p) for p in paths], codes, quality))
    limits, _, neighbours = index.range_search(codes, max_distance + 1)  # distance < radius
    dropped = np.zeros(len(paths), dtype=bool)
    for j in range(len(paths)):
        earlier = neighbours[limits[j] : limits[j + 1]]
        earlier = earlier[earlier < j]
        dropped[j] = bool(np.any(~dropped[earlier]))
    return [p for p, drop in zip(paths, dropped) if not drop]


def same_object_groups(paths: Sequence[Path]) -> list[tuple[Path, ...]]:
    """``paths`` as units that must stay together: one per UKBench object, one per other photo.

    Files named ``ukbenchNNNNN`` (any extension, in one folder) with the same ``NNNNN // 4``
    are photos of one object.
    """
    groups: dict[tuple[Path, int], list[Path]] = {}
    units: list[tuple[Path, ...]] = []
    for path in paths:
        match = SAME_OBJECT_PATTERN.fullmatch(path.stem)
        if match:
            groups.setdefault((path.parent, int(match[1]) // SAME_OBJECT_GROUP_SIZE), []).append(path)
        else:
            units.append((path,))
    return units + [tuple(group) for group in groups.values()]


def _plan_bench(
    sources: Sequence[Path],
    n_references: int,
    n_copies: int,
    n_noncopies: int,
    n_hard_negatives: int | None,
    families: Sequence[str],
    rng: np.random.Generator,
    n_dropped: int = 0,
) -> tuple[list[Path], list[_BenchQuery]]:
    """Choose the references and the queries of a :func:`make_bench` benchmark, in id order.

    ``n_dropped``: near-duplicates already left out of ``sources`` (for error messages).
    """
    _check_counts(n_references, n_copies, n_noncopies)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown or no edit families {unknown}: choose from {', '.join(FAMILIES)}")
    units = same_object_groups(sources)
    groups = [i for i, unit in enumerate(units) if len(unit) > 1]
    if n_hard_negatives is None:
        n_hard_negatives = min(len(groups), n_noncopies // 5, n_references)
    elif n_hard_negatives < 0:
        raise ValueError("image counts must be non-negative")
    elif n_hard_negatives > len(groups):
        raise ValueError(
            f"too few same-object groups for {n_hard_negatives} hard negatives: found {len(groups)} "
            f"(UKBench-style files ukbenchNNNNN, {SAME_OBJECT_GROUP_SIZE} photos per object)"
        )
    elif n_hard_negatives > n_references:
        raise ValueError(f"n_hard_negatives={n_hard_negatives} > n_references={n_references}")
    needed = n_references + n_noncopies + n_hard_negatives
    found = f"{len(sources)}" + (f" (after dropping {n_dropped} near-duplicates)" if n_dropped else "")
    wanted = (
        f"{n_references} references + {n_noncopies} non-copy queries + {n_hard_negatives} hard-negative queries"
    )
    if len(sources) < needed:
        raise ValueError(f"too few source images: found {found}, need {needed} ({wanted})")

    # Hard negatives: one photo of the object among the references, another as the query;
    # the object's other photos are left out.
    pairs: list[tuple[Path, Path]] = []
    paired = rng.choice(groups, size=n_hard_negatives, replace=False)
    for g in paired:
        a, b = rng.choice(len(units[g]), size=2, replace=False)
        pairs.append((units[g][a], units[g][b]))
    # The rest, unit by unit: the references first; a group that overflows them is cut and
    # the cut-off photos left out, so no object straddles references and queries.
    n_other_references = n_references - n_hard_negatives
    reference_side: list[Path] = []
    other_side: list[Path] = []
    used = set(int(g) for g in paired)
    rest = [unit for i, unit in enumerate(units) if i not in used]
    for i in rng.permutation(len(rest)):
        unit = [rest[i][j] for j in rng.permutation(len(rest[i]))]
        free = n_other_references - len(reference_side)
        if free > 0:
            reference_side += unit[:free]
        else:
            other_side += unit
    if len(reference_side) < n_other_references or len(other_side) < n_noncopies:
        usable = len(reference_side) + len(other_side) + 2 * n_hard_negatives
        raise ValueError(
            f"too few source images: found {found}, need {needed} ({wanted}), but only {usable} "
            "are usable: photos of one object are never split between references and queries "
            "except in hard-negative pairs"
        )

    references = reference_side + [a for a, _ in pairs]
    references = [references[i] for i in rng.permutation(len(references))]
    reference_ids = {path: _reference_id(i) for i, path in enumerate(references)}
    copied = rng.choice(n_references, size=n_copies, replace=False)
    queries = [
        _BenchQuery(references[r], "copy", family, reference_id=_reference_id(r))
        for r, family in zip(copied, _balanced(families, n_copies, rng))
    ]
    queries += [
        _BenchQuery(src, "noncopy", family)
        for src, family in zip(other_side[:n_noncopies], _balanced(families, n_noncopies, rng))
    ]
    queries += [
        _BenchQuery(b, "hard_negative", edit, similar_reference_id=reference_ids[a])
        for (a, b), edit in zip(pairs, _balanced(HARD_NEGATIVE_EDITS, n_hard_negatives, rng))
    ]
    # Backgrounds: photos that are neither references nor of a hard-negative object.
    queries = [_with_background(q, other_side, rng) for q in queries]
    missing = sorted({q.family for q in queries if q.family in BACKDROP_FAMILIES and q.background is None})
    if missing:
        raise ValueError(
            f"families {missing} need photos outside the references to paste onto: found {len(other_side)}; "
            "add source images or leave these families out"
        )
    return references, [queries[i] for i in rng.permutation(len(queries))]


def _with_background(query: _BenchQuery, pool: Sequence[Path], rng: np.random.Generator) -> _BenchQuery:
    """``query`` with a background photo from ``pool`` (not its own photo) if its family can use one."""
    if query.family not in _BACKDROP_USERS or not pool:
        return query
    i = int(rng.integers(len(pool)))
    if pool[i] == query.source:
        if len(pool) == 1:
            return query
        i = (i + 1) % len(pool)
    return dataclasses.replace(query, background=pool[i])


def _render_bench_query(
    query: _BenchQuery, rng: np.random.Generator, max_side: int | None
) -> tuple[Image.Image, tuple[str, ...]]:
    photo = _load(query.source, max_side)
    if query.family == NO_EDIT:
        edited = Edited(photo, ())
    else:
        backdrop = None if query.background is None else functools.partial(_load, query.background, max_side)
        edited = apply_family(query.family, photo, rng, backdrop)
    box = ("",) * 4 if edited.box is None else tuple(str(v) for v in edited.box)
    return edited.image, (query.kind, query.family, "+".join(edited.steps), query.similar_reference_id, *box)


# --- shared machinery ----------------------------------------------------------------


def _load_rgb(path: Path) -> np.ndarray:
    """The photo at ``path`` as ``HxWx3`` uint8 RGB (:func:`d2lv.io.images.load_image`); errors name the file."""
    try:
        return load_image(path)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err


def _load(path: Path, max_side: int | None = None) -> Image.Image:
    """The photo at ``path`` as RGB, its long side shrunk to ``max_side`` if longer."""
    img = Image.fromarray(_load_rgb(path))
    return img if max_side is None else shrink_long_side(img, max_side)


def _write(
    out: Path,
    references: Sequence[Path],
    queries: Sequence[_Query] | Sequence[_BenchQuery],
    render: Callable[[Any, np.random.Generator], tuple[Image.Image, tuple[str, ...]]],
    columns: Sequence[str],
    load_reference: Callable[[Path], Image.Image],
    seed: int,
    progress: bool,
) -> None:
    """Write the images and both CSV files of a planned benchmark.

    Query ``i`` is rendered with generator ``1 + i`` of ``seed``; ``render`` gives its
    image and its ``categories.csv`` row, whose ``columns`` follow ``query_id``.
    """
    files = planned_files(out, len(references), len(queries))
    for folder in (out / REFERENCE_DIR, out / QUERY_DIR):
        _clear_images(folder)
    rows: list[tuple[str, ...]] = []
    with tqdm(
        total=len(references) + len(queries), desc=f"building {out.name}", unit="img", disable=not progress
    ) as bar:
        for src, dst in zip(references, files["references"]):
            _save(load_reference(src), dst)
            bar.update()
        for i, (query, dst) in enumerate(zip(queries, files["queries"])):
            image, row = render(query, _rng(seed, 1 + i))
            _save(image, dst)
            rows.append((_query_id(i), *row))
            bar.update()
    _write_csv(
        out / GROUND_TRUTH_FILE,
        ["query_id", "reference_id"],
        [(_query_id(i), q.reference_id) for i, q in enumerate(queries)],
    )
    _write_csv(out / CATEGORIES_FILE, ["query_id", *columns], rows)


def _clear_images(folder: Path) -> None:
    """Make ``folder`` exist without images left by an earlier, larger build."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if _ID_PATTERN.match(path.name):
            path.unlink()


def _save(img: Image.Image, path: Path) -> None:
    img.convert("RGB").save(path, format="JPEG", quality=JPEG_QUALITY)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
