"""HDF5 helpers shared by every store of per-image arrays (local features, global descriptors, PDQ hashes):
string ids, and reading one set that is cut into shard files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import h5py
import numpy as np

PathOrPaths = str | os.PathLike | Iterable[str | os.PathLike]


def as_paths(paths: PathOrPaths) -> list[str | os.PathLike]:
    """One path or many, as a list."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def write_ids(h5: h5py.File, name: str, ids: Sequence[str]) -> None:
    """Image ids as a variable-length UTF-8 string dataset."""
    h5.create_dataset(name, data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())


def read_ids(dataset: h5py.Dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[:]]


def concatenate(arrays: Sequence[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """The shards' arrays one after the other; an array of ``empty_shape`` when there are none."""
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty_shape, dtype)
