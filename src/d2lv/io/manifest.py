"""The manifest: which images a set holds, how they are sharded, which are usable.

Shards are assigned by a stable hash of the image id, so adding or removing
one image changes only the shard it falls in (until the number of shards,
``ceil(n / shard_size)``, itself changes).
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from d2lv.errors import D2lvError, InputError
from d2lv.io import tables
from d2lv.io.images import DEFAULT_MAX_PIXELS, ImageError, find_images, image_id, load_image, reason_counts


class DuplicateIdError(D2lvError, ValueError):
    """Two files in one set share a stem, so their ids would collide."""


class UnusableSetError(D2lvError):
    """No image a step needs can be used: every one of them failed to decode."""


def check_unique_ids(paths: Iterable[Path]) -> dict[str, Path]:
    """Map id to path, failing on the first id that two files share."""
    seen: dict[str, Path] = {}
    for path in paths:
        key = image_id(path)
        if key in seen:
            raise DuplicateIdError(
                f"two images share the id {key!r}: {seen[key]} and {path}. "
                "Image ids are file stems and must be unique within a set; rename one of them."
            )
        seen[key] = path
    return seen


def num_shards(n_images: int, shard_size: int) -> int:
    """The number of shards: the power of two that keeps shards at ``shard_size`` images or fewer on average.

    A power of two changes only when the collection doubles (crossing ``shard_size * 2**k``), so adding
    images moves no other image to another shard until then; when it does double, each shard splits in
    two (an image of shard ``s`` goes to ``s`` or ``s + n``, by the same hash). Shards then hold between
    half of ``shard_size`` and ``shard_size`` images on average.
    """
    if shard_size < 1:
        raise InputError(f"shard_size must be at least 1, got {shard_size}")
    return 2 ** max(0, math.ceil(math.log2(max(1, math.ceil(n_images / shard_size)))))


def shard_of(key: str, n_shards: int) -> int:
    """Stable shard index of an image id (independent of the other ids)."""
    return zlib.crc32(key.encode("utf-8")) % n_shards


def shard_name(index: int) -> str:
    return f"{index:04d}"


def plan_shards(paths: Sequence[Path], shard_size: int) -> dict[str, list[Path]]:
    """Split image paths into named shards; every shard name appears, even if empty."""
    by_id = check_unique_ids(paths)
    n = num_shards(len(by_id), shard_size)
    plan: dict[str, list[Path]] = {shard_name(i): [] for i in range(n)}
    for key, path in by_id.items():
        plan[shard_name(shard_of(key, n))].append(path)
    return plan


def build_manifest(
    paths: Sequence[Path], max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True
) -> pd.DataFrame:
    """Decode every image once; record size, or the reason it cannot be used."""
    check_unique_ids(paths)
    rows = []
    for path in tqdm(paths, desc="manifest", unit="img", disable=not progress):
        row = {"id": image_id(path), "path": str(path), "width": 0, "height": 0,
               "bytes": path.stat().st_size if path.is_file() else 0, "status": "ok", "reason": ""}
        try:
            pixels = load_image(path, max_pixels)
            row["height"], row["width"] = pixels.shape[:2]
        except ImageError as err:
            row["status"], row["reason"] = "skipped", str(err)
        rows.append(row)
    if not rows:
        return tables.empty_frame(tables.MANIFEST)
    return pd.DataFrame(rows)


def shard_paths(inputs: str | os.PathLike | Sequence[str | os.PathLike], shard: int = 0,
                n_shards: int = 1) -> list[Path]:
    """The images of ``inputs`` (image files, and folders searched recursively) in shard ``shard`` of ``n_shards``.

    The workflow passes a shard's files, planned when the Snakefile was parsed, so that no job lists the
    collection's folder again (at a million references that walk would cost more than the shard's decoding).
    """
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    paths = [image for item in inputs for image in (find_images(item) if os.path.isdir(item) else [Path(item)])]
    check_unique_ids(paths)
    return [p for p in paths if shard_of(image_id(p), n_shards) == shard]


def require_usable(frame: pd.DataFrame, what: str) -> int:
    """The number of usable images of a manifest ``frame``, which must hold one; ``what`` names them in the error.

    Raises:
        UnusableSetError: every image of ``frame`` was refused (its message counts the reasons),
            or ``frame`` holds no image.
    """
    usable = int((frame.status == "ok").sum())
    if usable:
        return usable
    if frame.empty:
        raise UnusableSetError(f"no {what}: there is none")
    raise UnusableSetError(f"no usable {what}: {len(frame)} found, all refused ({reason_counts(frame.reason)})")


def read_manifest(path: str | os.PathLike, usable_only: bool = True) -> pd.DataFrame:
    return read_manifests([path], usable_only)


def read_manifests(paths: Sequence[str | os.PathLike], usable_only: bool = True) -> pd.DataFrame:
    """Several manifests as one table, in order; only the usable images unless ``usable_only`` is False."""
    frame = tables.read_tables(paths, tables.MANIFEST)
    return frame[frame.status == "ok"].reset_index(drop=True) if usable_only else frame
