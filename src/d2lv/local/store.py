"""HDF5 store of local features: one file per shard.

Layout (all datasets at the root):

========== ============ ==================================================
ids        str  [n]     image ids
sizes      int32[n, 2]  original width, height
offsets    int64[n+1]   image i owns rows ``offsets[i]:offsets[i+1]``
keypoints  f32  [N, 4]  x, y, size, angle in original-image pixels
descriptors u8  [N,128] quantised RootSIFT (see :mod:`d2lv.local.sift`)
========== ============ ==================================================

Extraction parameters are kept as file attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from d2lv.io import hdf5
from d2lv.local.sift import DESCRIPTOR_DIM


@dataclass(frozen=True)
class ImageFeatures:
    image_id: str
    width: int
    height: int
    keypoints: np.ndarray  # float32 [n, 4]
    descriptors: np.ndarray  # uint8 [n, 128]


def write_store(path: str | os.PathLike, features: Sequence[ImageFeatures], attrs: Mapping[str, object]) -> None:
    counts = np.array([len(f.descriptors) for f in features], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with h5py.File(path, "w") as h5:
        hdf5.write_ids(h5, "ids", [f.image_id for f in features])
        h5.create_dataset("sizes", data=np.array([(f.width, f.height) for f in features], np.int32).reshape(-1, 2))
        h5.create_dataset("offsets", data=offsets)
        h5.create_dataset("keypoints", data=hdf5.concatenate([f.keypoints for f in features], (0, 4), np.float32))
        h5.create_dataset("descriptors", data=hdf5.concatenate([f.descriptors for f in features],
                                                               (0, DESCRIPTOR_DIM), np.uint8))
        h5.attrs.update(dict(attrs))


class FeatureStore:
    """Read access to one or more shard files, as if they were one store."""

    def __init__(self, paths: hdf5.PathOrPaths):
        ids, sizes, offsets, keypoints, descriptors = [], [], [], [], []
        base = 0
        self.attrs: dict[str, object] = {}
        for path in hdf5.as_paths(paths):
            with h5py.File(path, "r") as h5:
                ids.extend(hdf5.read_ids(h5["ids"]))
                sizes.append(h5["sizes"][:])
                offsets.append(h5["offsets"][:-1] + base)
                keypoints.append(h5["keypoints"][:])
                descriptors.append(h5["descriptors"][:])
                base += len(descriptors[-1])
                self.attrs.update(h5.attrs)
        self.ids: list[str] = ids
        self.sizes = np.concatenate(sizes) if sizes else np.zeros((0, 2), np.int32)
        self.offsets = np.concatenate(offsets + [np.array([base])]).astype(np.int64)
        self.keypoints = hdf5.concatenate(keypoints, (0, 4), np.float32)
        self.descriptors = hdf5.concatenate(descriptors, (0, DESCRIPTOR_DIM), np.uint8)
        self._index = {key: i for i, key in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._index

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owner(self, rows: np.ndarray) -> np.ndarray:
        """Image index owning each descriptor row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def get(self, image_id: str) -> ImageFeatures:
        i = self._index[image_id]
        lo, hi = self.offsets[i], self.offsets[i + 1]
        w, h = self.sizes[i]
        return ImageFeatures(image_id, int(w), int(h), self.keypoints[lo:hi], self.descriptors[lo:hi])
