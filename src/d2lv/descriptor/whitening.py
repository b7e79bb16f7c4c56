"""PCA whitening: raw backbone descriptors to compact, decorrelated, unit-length vectors.

Learned on reference descriptors only (no labels). Whitening equalises the
variance of the principal directions so that no few dominant (often
photographic, not content) directions swamp the similarity; a shrinkage term
keeps directions with tiny variance from being amplified into noise, which
matters when the reference set is small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from d2lv.errors import InputError
from d2lv.io import atomic

#: Descriptors :meth:`Whitening.apply` converts to float64 at once (bounds the copy: 16,384 x 1280 x 8 B = 168 MB).
APPLY_ROWS = 16_384


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray  # float32 [d_in]
    projection: np.ndarray  # float32 [d_in, d_out], whitening scales folded in

    @property
    def dim(self) -> int:
        return self.projection.shape[1]

    def apply(self, descriptors: np.ndarray) -> np.ndarray:
        """Centre, project, whiten and L2-normalise ``[n, d_in]`` descriptors (float32).

        Computed in float64, rounded to float32 once at the end, so that a descriptor's result does not
        depend on how many are whitened together: in float32, BLAS takes another kernel for one row
        (matrix-vector) than for many (matrix-matrix), and the last bits differ; a query whitened alone
        must get the vector it gets in a batch. Rows go :data:`APPLY_ROWS` at a time, so that the float64
        copy stays small for a large reference set.
        """
        x = np.asarray(descriptors, np.float32)
        out = np.empty((len(x), self.dim), np.float32)
        for start in range(0, len(x), APPLY_ROWS):
            out[start:start + APPLY_ROWS] = self._apply64(x[start:start + APPLY_ROWS])
        return out

    def _apply64(self, descriptors: np.ndarray) -> np.ndarray:
        """:meth:`apply` of a few rows, in float64."""
        out = (descriptors.astype(np.float64) - self.mean.astype(np.float64)) @ self.projection.astype(np.float64)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def fit_whitening(descriptors: np.ndarray, dim: int = 256, shrinkage: float = 0.1) -> Whitening:
    """PCA to ``dim`` dimensions, each scaled by ``(eigenvalue + shrinkage * mean eigenvalue)^-1/2``.

    With fewer descriptors than ``dim``, the trailing directions carry no
    variance; the shrinkage term keeps their scale bounded.
    """
    x = np.asarray(descriptors, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"need at least 2 descriptors to fit a whitening, got shape {x.shape}: with a single "
                         "usable reference image, turn the global branch off (descriptor.enabled: false)")
    if dim > x.shape[1]:
        raise InputError(f"cannot project {x.shape[1]}-d descriptors to {dim} dimensions")
    mean = x.mean(axis=0)
    covariance = np.cov(x - mean, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:dim]
    eigenvalues = np.maximum(eigenvalues[order], 0.0)
    regulariser = shrinkage * max(float(eigenvalues.mean()), 1e-12)
    projection = eigenvectors[:, order] / np.sqrt(eigenvalues + regulariser)
    return Whitening(mean.astype(np.float32), projection.astype(np.float32))


def write_whitening(path: str | os.PathLike, whitening: Whitening, n_train: int) -> None:
    with atomic.replacing(path) as partial, h5py.File(partial, "w") as h5:
        h5.create_dataset("mean", data=whitening.mean)
        h5.create_dataset("projection", data=whitening.projection)
        h5.attrs["n_train"] = n_train


def read_whitening(path: str | os.PathLike) -> Whitening:
    with h5py.File(path, "r") as h5:
        return Whitening(h5["mean"][:], h5["projection"][:])
