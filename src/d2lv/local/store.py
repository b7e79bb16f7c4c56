"""HDF5 store of local features: one file per shard.

Layout (all datasets at the root):

========== ============ ==================================================
ids        str  [n]     image ids
sizes      int32[n, 2]  original width, height
offsets    int64[n+1]   image i owns rows ``offsets[i]:offsets[i+1]``
keypoints  f32  [N, 4]  x, y, size, angle in original-image pixels
descriptors u8  [N,128] quantised RootSIFT (see :mod:`d2lv.local.sift`)
========== ============ ==================================================

Extraction parameters are kept as file attributes (:meth:`FeatureStore.extraction` reads them back).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from d2lv.errors import InputError
from d2lv.io import atomic, hdf5
from d2lv.local.params import SiftParams
from d2lv.local.sift import DESCRIPTOR_DIM, extract


@dataclass(frozen=True)
class ImageFeatures:
    image_id: str
    width: int
    height: int
    keypoints: np.ndarray  # float32 [n, 4]
    descriptors: np.ndarray  # uint8 [n, 128]


def image_features(image_id: str, gray: np.ndarray, params: SiftParams) -> ImageFeatures:
    """The RootSIFT features of one ``HxW`` uint8 image (a crop may be a view of a larger one)."""
    keypoints, descriptors = extract(np.ascontiguousarray(gray), params)
    return ImageFeatures(image_id, gray.shape[1], gray.shape[0], keypoints, descriptors)


def write_store(path: str | os.PathLike, features: Sequence[ImageFeatures], attrs: Mapping[str, object]) -> None:
    counts = np.array([len(f.descriptors) for f in features], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    with atomic.replacing(path) as partial, h5py.File(partial, "w") as h5:
        hdf5.write_ids(h5, "ids", [f.image_id for f in features])
        h5.create_dataset("sizes", data=np.array([(f.width, f.height) for f in features], np.int32).reshape(-1, 2))
        h5.create_dataset("offsets", data=offsets)
        h5.create_dataset("keypoints", data=hdf5.concatenate([f.keypoints for f in features], (0, 4), np.float32))
        h5.create_dataset("descriptors", data=hdf5.concatenate([f.descriptors for f in features],
                                                               (0, DESCRIPTOR_DIM), np.uint8))
        h5.attrs.update(dict(attrs))


#: Shard files a store keeps open at once for :meth:`FeatureStore.get` (below the usual 1024 descriptors).
MAX_OPEN_FILES = 64


class FeatureStore:
    """Read access to one or more shard files, as if they were one store.

    Ids, sizes and offsets are read at once; the descriptor and keypoint arrays only when asked for
    (:attr:`descriptors`, :attr:`keypoints`), and :meth:`get` reads one image's rows from its file, so a
    job that verifies a few candidates can open every reference shard of a large collection.
    """

    def __init__(self, paths: hdf5.PathOrPaths):
        self._paths = [str(p) for p in hdf5.as_paths(paths)]
        self._max_open = MAX_OPEN_FILES
        ids, sizes, offsets, files = [], [], [], []
        base = 0
        self.attrs: dict[str, object] = {}
        for k, path in enumerate(self._paths):
            with h5py.File(path, "r") as h5:
                ids.extend(hdf5.read_ids(h5["ids"]))
                sizes.append(h5["sizes"][:])
                offsets.append(h5["offsets"][:-1] + base)
                files.append(np.full(len(h5["sizes"]), k, np.int32))
                base += len(h5["descriptors"])
                self.attrs.update(h5.attrs)
        self.ids: list[str] = ids
        self.sizes = np.concatenate(sizes) if sizes else np.zeros((0, 2), np.int32)
        self.offsets = np.concatenate(offsets + [np.array([base])]).astype(np.int64)
        self._file_of = np.concatenate(files) if files else np.zeros(0, np.int32)
        self._file_start = np.array([0, *np.cumsum([len(o) for o in offsets])], np.int64)
        self._index = {key: i for i, key in enumerate(ids)}
        self._open: dict[int, h5py.File] = {}

    @classmethod
    def from_features(cls, features: Sequence[ImageFeatures], attrs: Mapping[str, object]) -> FeatureStore:
        """A store of features held in memory (one query's views), read as a store of written ones is."""
        store = cls([])
        store.attrs = dict(attrs)
        store.ids = [f.image_id for f in features]
        store.sizes = np.array([(f.width, f.height) for f in features], np.int32).reshape(-1, 2)
        store.offsets = np.concatenate([[0], np.cumsum([len(f.descriptors) for f in features])]).astype(np.int64)
        store._index = {key: i for i, key in enumerate(store.ids)}
        store.__dict__["descriptors"] = hdf5.concatenate([f.descriptors for f in features], (0, DESCRIPTOR_DIM),
                                                         np.uint8)
        store.__dict__["keypoints"] = hdf5.concatenate([f.keypoints for f in features], (0, 4), np.float32)
        return store

    def hold_open(self) -> None:
        """Open every shard file now and keep it open: a workflow rerun that replaces a file (a new inode) then
        cannot change what this store reads (a long-lived matcher's collection)."""
        self._max_open = max(self._max_open, len(self._paths))
        for k in range(len(self._paths)):
            self._file(k)

    @functools.cached_property
    def descriptors(self) -> np.ndarray:
        """uint8 [N, 128]: every descriptor of every file, in order."""
        return hdf5.concatenate(self._read_all("descriptors"), (0, DESCRIPTOR_DIM), np.uint8)

    @functools.cached_property
    def keypoints(self) -> np.ndarray:
        """float32 [N, 4]: every keypoint of every file, in order."""
        return hdf5.concatenate(self._read_all("keypoints"), (0, 4), np.float32)

    def _file(self, k: int) -> h5py.File:
        """File ``k``, open; at most :data:`MAX_OPEN_FILES` stay open (the least recently opened closes)."""
        if k not in self._open:
            if len(self._open) >= self._max_open:
                self._open.pop(next(iter(self._open))).close()
            self._open[k] = h5py.File(self._paths[k], "r")
        return self._open[k]

    def _read_all(self, name: str) -> list[np.ndarray]:
        arrays = []
        for path in self._paths:
            with h5py.File(path, "r") as h5:
                arrays.append(h5[name][:])
        return arrays

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._index

    def extraction(self) -> SiftParams:
        """The SIFT settings these features were extracted with, as the sift step recorded them: what
        verification scales its pixel threshold by."""
        fields = dataclasses.fields(SiftParams)
        missing = [f.name for f in fields if f.name not in self.attrs]
        if missing:
            raise InputError(f"{' '.join(self._paths)} does not record the SIFT settings it was extracted with "
                             f"({', '.join(missing)}); extract it again with `d2lv sift`")
        return SiftParams(**{f.name: type(f.default)(self.attrs[f.name]) for f in fields})

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owner(self, rows: np.ndarray) -> np.ndarray:
        """Image index owning each descriptor row."""
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def get(self, image_id: str) -> ImageFeatures:
        i = self._index[image_id]
        lo, hi = self.offsets[i], self.offsets[i + 1]
        w, h = self.sizes[i]
        if "descriptors" in self.__dict__ and "keypoints" in self.__dict__:
            return ImageFeatures(image_id, int(w), int(h), self.keypoints[lo:hi], self.descriptors[lo:hi])
        k = int(self._file_of[i])
        h5 = self._file(k)
        base = self.offsets[self._file_start[k]]  # the file's first row in this store's numbering
        return ImageFeatures(image_id, int(w), int(h), h5["keypoints"][lo - base:hi - base],
                             h5["descriptors"][lo - base:hi - base])
