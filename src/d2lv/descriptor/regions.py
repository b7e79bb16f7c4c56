"""Regions of a query that the global branch describes beside the query itself.

One descriptor of a whole query is dominated by whatever fills most of it: a copy that is one
cell of a collage, a small paste on a photo or the picture inside a screenshot is a small share
of it. So a query may also be described as a grid of cells over its whole image; each region is
searched on its own and a (query, reference) pair keeps its best region's similarity. A region's
id is ``<query id>/grid<k>`` (row-major), so that :func:`d2lv.io.views.query_of` maps it back
like a crop's id.
"""

from __future__ import annotations

import numpy as np

from d2lv.io.images import Box

GRID_TAG = "grid"
#: The region id suffix of a cropped query's whole image (its first descriptor is its first crop's).
WHOLE_TAG = "whole"


def grid_boxes(width: int, height: int, n: int) -> list[Box]:
    """The ``n x n`` cells (x0, y0, x1, y1; ``x1``/``y1`` exclusive) tiling a ``width x height`` image."""
    xs = [width * i // n for i in range(n + 1)]
    ys = [height * i // n for i in range(n + 1)]
    return [(xs[j], ys[i], xs[j + 1], ys[i + 1]) for i in range(n) for j in range(n)]


def grid_regions(query_id: str, rgb: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
    """The ``n x n`` grid cells of a query's image, each with its region id (none for ``n`` < 2, or for an
    image too small to cut into cells of a pixel)."""
    height, width = rgb.shape[:2]
    if n < 2 or min(width, height) < n:
        return []
    return [(f"{query_id}/{GRID_TAG}{k}", rgb[y0:y1, x0:x1])
            for k, (x0, y0, x1, y1) in enumerate(grid_boxes(width, height, n))]


def primary_view(rgb: np.ndarray, crops: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """What a query's one descriptor describes: its first (most confident) crop, or the whole query."""
    return crops[0][1] if crops else rgb


def region_views(query_id: str, rgb: np.ndarray, crops: list[tuple[str, np.ndarray]],
                 grid: int) -> list[tuple[str, np.ndarray]]:
    """Every view of a query besides :func:`primary_view`, with its region id: the whole image of a cropped
    query, its further crops (their crop ids), and the cells of a ``grid x grid`` grid over the whole image."""
    whole = [(f"{query_id}/{WHOLE_TAG}", rgb)] if crops else []
    return whole + crops[1:] + grid_regions(query_id, rgb, grid)
