"""Dev sets: photos of a folder edited with one recipe of :data:`d2lv.synth.edits.RECIPES` each.

The layout and the seeding are :mod:`d2lv.synth.common`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from d2lv.errors import InputError
from d2lv.io.images import find_images
from d2lv.synth.common import balanced, check_counts, load_photo, rng_stream, write_set
from d2lv.synth.edits import RECIPES, random_edit
from d2lv.synth.layout import reference_id


@dataclass(frozen=True)
class DevQuery:
    """A query of :func:`make_devset` / :func:`d2lv.synth.demo.make_demo`."""

    source: Path
    reference_id: str  # "" for a non-copy
    primary: str  # edit recipe


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
    build_devset(list(find_images(source)), Path(out), n_references, n_copies, n_noncopies, seed, progress)


def plan_devset(
    sources: Sequence[Path], n_references: int, n_copies: int, n_noncopies: int, rng: np.random.Generator
) -> tuple[list[Path], list[DevQuery]]:
    """Choose the reference photos and the queries of a dev set, in id order."""
    check_counts(n_references, n_copies, n_noncopies)
    needed = n_references + n_noncopies
    if len(sources) < needed:
        raise InputError(
            f"too few source images: found {len(sources)}, need {needed} "
            f"({n_references} references + {n_noncopies} non-copy queries)"
        )
    order = rng.permutation(len(sources))
    references = [sources[i] for i in order[:n_references]]
    noncopy_sources = [sources[i] for i in order[n_references:needed]]
    copied = rng.choice(n_references, size=n_copies, replace=False)
    names = list(RECIPES)
    queries = [
        DevQuery(references[r], reference_id(r), recipe)
        for r, recipe in zip(copied, balanced(names, n_copies, rng))
    ] + [DevQuery(src, "", recipe) for src, recipe in zip(noncopy_sources, balanced(names, n_noncopies, rng))]
    return references, [queries[i] for i in rng.permutation(len(queries))]


def build_devset(
    sources: Sequence[Path],
    out: Path,
    n_references: int,
    n_copies: int,
    n_noncopies: int,
    seed: int,
    progress: bool = True,
) -> None:
    """Plan a dev set from ``sources`` with generator 0 of ``seed`` and write it in ``out``."""
    references, queries = plan_devset(sources, n_references, n_copies, n_noncopies, rng_stream(seed, 0))
    write_set(out, references, queries, _render_devset_query, ("kind", "recipe"), load_photo, seed, progress)


def _render_devset_query(query: DevQuery, rng: np.random.Generator) -> tuple[Image.Image, tuple[str, ...]]:
    edited, applied = random_edit(load_photo(query.source), rng, primary=query.primary)
    return edited, ("copy" if query.reference_id else "noncopy", "+".join(applied))
