"""Benchmarks shaped like ISC 2021's DISC21, built from folders of real photos.

The copies and non-copies are edited by the families of :data:`d2lv.synth.families.FAMILIES`
(each family equally often); hard negatives show a reference's object in another photo, or
the other part of a reference's photo (:class:`d2lv.synth.photos.Tile`); pasted copies come
with their box. The training split's photos are left out (:mod:`d2lv.synth.photos`),
near-duplicate source photos are dropped (:func:`drop_near_duplicates`), and photos of one
object (:func:`same_object_groups`) are kept on one side. The layout and the seeding are
:mod:`d2lv.synth.common`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io.images import find_images
from d2lv.pdq import hashes as pdq
from d2lv.synth.common import balanced, check_counts, load_rgb, rng_stream, write_set
from d2lv.synth.edits import Edited
from d2lv.synth.families import FAMILIES, apply_family
from d2lv.synth.layout import reference_id
from d2lv.synth.photos import Source, load_source, split_in_two, without_training_photos

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
BACKDROP_USERS: tuple[str, ...] = (*BACKDROP_FAMILIES, "padding")

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
class BenchQuery:
    """A query of :func:`make_bench` (and of :func:`d2lv.synth.calibration.make_calibration`)."""

    source: Source
    kind: str  # copy | noncopy | hard_negative
    family: str  # edit family, or NO_EDIT
    reference_id: str = ""  # the reference it copies ("" unless kind == "copy")
    similar_reference_id: str = ""  # hard negatives: the reference showing the same object
    background: Path | None = None  # photo to paste onto, for families that can use one


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
    training_photos: bool = False,
) -> None:
    """Build a benchmark shaped like ISC 2021's DISC21 from folders of photos.

    * ``n_references`` photos, long side capped at ``max_side``, make the collection.
    * ``n_copies`` queries each copy a different reference, edited by one family of
      :data:`d2lv.synth.families.FAMILIES` (each family equally often).
    * ``n_noncopies`` queries are photos outside the references, edited the same way (each
      photo several times, by different families, when there are fewer such photos).
    * ``n_hard_negatives`` queries show an object that a reference also shows, in another
      photo (UKBench-style files ``ukbenchNNNNN``, four per object) or, when the sources have
      no such groups, the other half of a reference's photo (the reference is one half,
      :class:`d2lv.synth.photos.Tile`): not copies, edited lightly (``mild``) or not at all
      (``none``).

    ``categories.csv`` has ``query_id,kind,recipe,steps,similar_reference_id,box_x0,box_y0,
    box_x1,box_y1``: ``kind`` is copy, noncopy or hard_negative; ``recipe`` the family;
    ``steps`` the elementary edits joined by ``+``; ``similar_reference_id`` the reference
    of a hard negative's object; the box (pixels, ``x1``/``y1`` exclusive) is where the
    photo lies in the query when a family placed it in a larger picture (padding, paste,
    screenshot, meme), empty otherwise.

    The training split's photos are left out unless ``training_photos`` (:mod:`d2lv.synth.photos`).
    Near-duplicate source photos are dropped first (:func:`drop_near_duplicates`), and
    photos of one object are never split between the references and the other roles,
    except for the hard-negative pairs: a non-copy never shows a reference's picture.
    Pasted photos go onto photos that are not references.

    Args:
        sources: a folder, or several, searched recursively.
        n_hard_negatives: None: as many as the sources allow, up to a fifth of
            ``n_noncopies``.
        families: names from :data:`d2lv.synth.families.FAMILIES`; None: all of them.
        max_side: cap on the long side of every photo before editing (None: no cap).

    Raises:
        ValueError: too few source images (or same-object groups) for the requested
            sizes, ``n_copies > n_references``, or an unknown family.
    """
    found = collect_images([sources] if isinstance(sources, (str, os.PathLike)) else list(sources))
    if not training_photos:
        found = without_training_photos(found)
    distinct = drop_near_duplicates(found, progress=progress)
    chosen = tuple(FAMILIES) if families is None else tuple(families)
    references, queries = plan_bench(distinct, n_references, n_copies, n_noncopies, n_hard_negatives, chosen,
                                     rng_stream(seed, 0), n_dropped=len(found) - len(distinct))
    load = functools.partial(load_source, max_side=max_side)
    render = functools.partial(render_bench_query, max_side=max_side)
    write_set(Path(out), references, queries, render, BENCH_CATEGORY_COLUMNS, load, seed, progress)


def collect_images(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """The images under ``folders``, in order, each file once."""
    seen: set[Path] = set()
    found: list[Path] = []
    for folder in folders:
        for path in find_images(folder):
            if (key := path.resolve()) not in seen:
                seen.add(key)
                found.append(path)
    return found


#: Photos whose PDQ hashes (256 bits, :mod:`d2lv.pdq.hashes`) differ in at most this many bits are
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

    Two photos nearly duplicate each other when their PDQ hashes (:mod:`d2lv.pdq.hashes`) differ in
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
        codes[k], quality[k] = pdq.hash_image(load_rgb(path))
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


def plan_bench(
    sources: Sequence[Path],
    n_references: int,
    n_copies: int,
    n_noncopies: int,
    n_hard_negatives: int | None,
    families: Sequence[str],
    rng: np.random.Generator,
    n_dropped: int = 0,
) -> tuple[list[Path], list[BenchQuery]]:
    """Choose the references and the queries of a :func:`make_bench` benchmark, in id order.

    ``n_dropped``: near-duplicates already left out of ``sources`` (for error messages).
    """
    check_counts(n_references, n_copies, n_noncopies)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise InputError(f"unknown or no edit families {unknown}: choose from {', '.join(FAMILIES)}")
    units = same_object_groups(sources)
    groups = [i for i, unit in enumerate(units) if len(unit) > 1]
    # without same-object groups, a hard negative is the other tile of a reference's photo
    pair_units = groups or list(range(len(units)))
    n_hard_negatives = _hard_negative_count(n_hard_negatives, len(pair_units), n_noncopies, n_references)
    needed = n_references + min(n_noncopies, 1) + (n_hard_negatives if groups else 0)
    found = f"{len(sources)}" + (f" (after dropping {n_dropped} near-duplicates)" if n_dropped else "")
    wanted = (
        f"{n_references} references + {n_noncopies} non-copy queries + {n_hard_negatives} hard-negative queries"
    )
    if not groups:
        wanted += f", the hard negatives as the other half of {n_hard_negatives} reference photos"
    if len(sources) < needed:
        raise InputError(f"too few source images: found {found}, need {needed} ({wanted})")

    pairs, used = _hard_negative_pairs(units, pair_units, n_hard_negatives, rng)
    n_other_references = n_references - n_hard_negatives
    rest = [unit for i, unit in enumerate(units) if i not in used]
    reference_side, other_side = _split_units(rest, n_other_references, rng)
    if len(reference_side) < n_other_references or len(other_side) < min(n_noncopies, 1):
        usable = len(reference_side) + len(other_side) + len({p for pair in pairs for p in pair})
        raise InputError(
            f"too few source images: found {found}, need {needed} ({wanted}), but only {usable} "
            "are usable: photos of one object are never split between references and queries "
            "except in hard-negative pairs"
        )

    references = reference_side + [a for a, _ in pairs]
    references = [references[i] for i in rng.permutation(len(references))]
    noncopy_sources = [other_side[i % len(other_side)] for i in range(n_noncopies)]
    queries = _bench_queries(references, noncopy_sources, pairs, families, n_copies, rng)
    # Backgrounds: photos that are neither references nor of a hard-negative object.
    queries = [_with_background(q, other_side, rng) for q in queries]
    missing = sorted({q.family for q in queries if q.family in BACKDROP_FAMILIES and q.background is None})
    if missing:
        raise InputError(
            f"families {missing} need photos outside the references to paste onto: found {len(other_side)}; "
            "add source images or leave these families out"
        )
    return references, [queries[i] for i in rng.permutation(len(queries))]


def _hard_negative_count(n_hard_negatives: int | None, n_groups: int, n_noncopies: int, n_references: int) -> int:
    """The number of hard negatives asked for, checked; None: as many as allowed, up to a fifth of the non-copies."""
    if n_hard_negatives is None:
        return min(n_groups, n_noncopies // 5, n_references)
    if n_hard_negatives < 0:
        raise InputError("image counts must be non-negative")
    if n_hard_negatives > n_groups:
        raise InputError(
            f"too few same-object groups for {n_hard_negatives} hard negatives: found {n_groups} "
            f"(UKBench-style files ukbenchNNNNN, {SAME_OBJECT_GROUP_SIZE} photos per object)"
        )
    if n_hard_negatives > n_references:
        raise InputError(f"n_hard_negatives={n_hard_negatives} > n_references={n_references}")
    return n_hard_negatives


def _hard_negative_pairs(
    units: Sequence[tuple[Path, ...]], candidates: Sequence[int], n: int, rng: np.random.Generator
) -> tuple[list[tuple[Source, Source]], set[int]]:
    """``n`` hard-negative pairs (a reference photo of an object, another photo of it as the query)
    and the units they come from; the object's other photos are left out. A unit of one photo
    gives its two tiles (:class:`d2lv.synth.photos.Tile`), one for each side."""
    pairs: list[tuple[Source, Source]] = []
    paired = rng.choice(candidates, size=n, replace=False)
    for g in paired:
        if len(units[g]) == 1:
            pairs.append(split_in_two(units[g][0], rng))
        else:
            a, b = rng.choice(len(units[g]), size=2, replace=False)
            pairs.append((units[g][a], units[g][b]))
    return pairs, set(int(g) for g in paired)


def _split_units(
    units: Sequence[tuple[Path, ...]], n_references: int, rng: np.random.Generator
) -> tuple[list[Path], list[Path]]:
    """The photos of ``units``, unit by unit in random order: the first ``n_references`` for the
    references, the rest for the other roles. A group that overflows the references is cut and
    the cut-off photos left out, so no object straddles references and queries."""
    reference_side: list[Path] = []
    other_side: list[Path] = []
    for i in rng.permutation(len(units)):
        unit = [units[i][j] for j in rng.permutation(len(units[i]))]
        free = n_references - len(reference_side)
        if free > 0:
            reference_side += unit[:free]
        else:
            other_side += unit
    return reference_side, other_side


def _bench_queries(
    references: Sequence[Source],
    noncopy_sources: Sequence[Path],
    pairs: Sequence[tuple[Source, Source]],
    families: Sequence[str],
    n_copies: int,
    rng: np.random.Generator,
) -> list[BenchQuery]:
    """The copies, non-copies and hard negatives, in that order, without backgrounds."""
    reference_ids = {path: reference_id(i) for i, path in enumerate(references)}
    copied = rng.choice(len(references), size=n_copies, replace=False)
    queries = [
        BenchQuery(references[r], "copy", family, reference_id=reference_id(r))
        for r, family in zip(copied, balanced(families, n_copies, rng))
    ]
    queries += [
        BenchQuery(src, "noncopy", family)
        for src, family in zip(noncopy_sources, balanced(families, len(noncopy_sources), rng))
    ]
    queries += [
        BenchQuery(b, "hard_negative", edit, similar_reference_id=reference_ids[a])
        for (a, b), edit in zip(pairs, balanced(HARD_NEGATIVE_EDITS, len(pairs), rng))
    ]
    return queries


def _with_background(query: BenchQuery, pool: Sequence[Path], rng: np.random.Generator) -> BenchQuery:
    """``query`` with a background photo from ``pool`` (not its own photo) if its family can use one."""
    if query.family not in BACKDROP_USERS or not pool:
        return query
    i = int(rng.integers(len(pool)))
    if pool[i] == query.source:
        if len(pool) == 1:
            return query
        i = (i + 1) % len(pool)
    return dataclasses.replace(query, background=pool[i])


def render_bench_query(
    query: BenchQuery, rng: np.random.Generator, max_side: int | None
) -> tuple[Image.Image, tuple[str, ...]]:
    """The query's photo (long side at most ``max_side``) edited with its family, and its categories row."""
    backdrop = None if query.background is None else functools.partial(load_source, query.background, max_side)
    return render_edited(query, max_side, lambda photo: apply_family(query.family, photo, rng, backdrop))


def render_edited(query: BenchQuery, max_side: int | None,
                  edit: Callable[[Image.Image], Edited]) -> tuple[Image.Image, tuple[str, ...]]:
    """The query's source (long side at most ``max_side``) edited by ``edit`` (left as it is when its family is
    :data:`NO_EDIT`), and its categories row (:data:`BENCH_CATEGORY_COLUMNS`)."""
    image = load_source(query.source, max_side)
    edited = Edited(image, ()) if query.family == NO_EDIT else edit(image)
    box = ("",) * 4 if edited.box is None else tuple(str(v) for v in edited.box)
    return edited.image, (query.kind, query.family, "+".join(edited.steps), query.similar_reference_id, *box)
