"""The picture of an answer's best match, as the report draws a matched pair (``?draw=1``)."""

from __future__ import annotations

import functools

import numpy as np

from d2lv.io import manifest
from d2lv.io.images import ImageError, load_image
from d2lv.query.matcher import Answer, Matcher
from d2lv.report import figures


def draw_best(matcher: Matcher, query_rgb: np.ndarray, answer: Answer,
              reference_rgb: np.ndarray | None = None) -> np.ndarray:
    """The best pair's inlier correspondences, box and evidence; the reference image is read from the
    collection's manifests unless given.

    Raises:
        ImageError: the reference's image is no longer readable where the run found it.
    """
    row = answer.pairs.iloc[0]
    if reference_rgb is None:
        paths = _reference_paths(tuple(matcher.collection.files["manifests"]))
        if row.reference_id not in paths:
            raise ImageError(f"reference {row.reference_id} is in no manifest of the collection")
        reference_rgb = load_image(paths[row.reference_id], matcher.decode.max_pixels)
    pick = figures.Selected("match", 1, row, "best match")
    crops = [box for box, _ in answer.boxes]
    return figures.pair_picture(pick, query_rgb, reference_rgb, crops, matcher.sift, matcher.verify_params)


@functools.lru_cache(maxsize=2)
def _reference_paths(manifests: tuple) -> dict[str, str]:
    """Reference id -> image path, read once per collection version."""
    frame = manifest.read_manifests(list(manifests))
    return dict(zip(frame.id, frame.path))
