"""Where the set builders write their images, known before anything is drawn.

The workflow plans its shards from these names when the Snakefile is parsed, before the demo or
the calibration copies exist, so this module imports nothing that draws images (no faiss, no
pdqhash, no image codecs): see :mod:`d2lv.workflow`.
"""

from __future__ import annotations

from pathlib import Path

from d2lv.io.isc import QUERY_DIR, REFERENCE_DIR

#: The pseudo-references of a calibration set: the other halves of half-copied references.
NEAR_DIR = "near"


def query_id(i: int) -> str:
    return f"Q{i:05d}"


def reference_id(i: int) -> str:
    return f"R{i:06d}"


def near_id(i: int) -> str:
    return f"near{i:05d}"


def graphic_id(i: int, part: int) -> str:
    """The pseudo-reference id of tile ``part`` of graphic ``i`` (tile 0 is copied, tile 1 is not)."""
    return f"graphic{i:05d}{'ab'[part]}"


def planned_files(out: Path, n_references: int, n_queries: int) -> dict[str, list[Path]]:
    """The image files a benchmark of this size has under ``out``."""
    return {
        "queries": [Path(out) / QUERY_DIR / f"{query_id(i)}.jpg" for i in range(n_queries)],
        "references": [Path(out) / REFERENCE_DIR / f"{reference_id(i)}.jpg" for i in range(n_references)],
    }


def planned_calibration_files(out: Path, n_queries: int) -> list[Path]:
    """The query files :func:`d2lv.synth.calibration.make_calibration` writes under ``out``."""
    return planned_files(out, 0, n_queries)["queries"]


def planned_near_files(out: Path, n_queries: int, near_share: float, graphics_share: float = 0.0) -> list[Path]:
    """The pseudo-reference files :func:`d2lv.synth.calibration.make_calibration` writes under ``out``."""
    names = [near_id(i) for i in range(near_count(n_queries, near_share))]
    names += [graphic_id(i, part) for i in range(graphic_count(n_queries, near_share, graphics_share))
              for part in (0, 1)]
    return [Path(out) / NEAR_DIR / f"{name}.jpg" for name in names]


def near_count(n_queries: int, near_share: float) -> int:
    """Copies of half a reference: ``near_share`` of the queries."""
    return int(round(n_queries * near_share))


def graphic_count(n_queries: int, near_share: float, graphics_share: float) -> int:
    """Copies of graphics: ``graphics_share`` of the queries, among those that do not copy half a reference."""
    return min(int(round(n_queries * graphics_share)), n_queries - near_count(n_queries, near_share))
