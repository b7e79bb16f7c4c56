"""Descriptor files in the HDF5 layout of the ISC 2021 descriptor track.

``query`` / ``reference`` float32 [n, d] and ``query_ids`` / ``reference_ids``
(variable-length strings). A shard file holds one set (:func:`write_descriptor_shard`);
:func:`combine_isc` gathers shards into one file with both sets.

Needs neither torch nor timm: the jobs that only search, whiten or export stay light.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import h5py
import numpy as np

from d2lv.errors import InputError
from d2lv.io import atomic, hdf5

#: The sets of the layout; :data:`d2lv.descriptor.params.ISC_SET` maps each input set onto one.
SETS = ("query", "reference")


def _check_set(set_name: str) -> None:
    if set_name not in SETS:
        raise ValueError(f"set must be one of {SETS}, got {set_name!r}")


def _write_set(h5: h5py.File, set_name: str, ids: Sequence[str], descriptors: np.ndarray) -> None:
    descriptors = np.asarray(descriptors, dtype=np.float32)
    if descriptors.ndim != 2 or len(descriptors) != len(ids):
        raise ValueError(f"{len(ids)} ids but descriptors of shape {descriptors.shape}")
    h5.create_dataset(set_name, data=descriptors)
    hdf5.write_ids(h5, f"{set_name}_ids", ids)


#: The datasets of a query shard's region descriptors (:mod:`d2lv.descriptor.regions`), beside the ISC layout.
REGIONS = "region"


def write_descriptor_shard(path: str | os.PathLike, set_name: str, ids: Sequence[str], descriptors: np.ndarray,
                           attrs: Mapping[str, object] | None = None,
                           regions: tuple[Sequence[str], np.ndarray] | None = None) -> None:
    """One shard of one set: datasets ``<set>`` and ``<set>_ids``, and ``region``/``region_ids`` when given."""
    _check_set(set_name)
    with atomic.replacing(path) as partial, h5py.File(partial, "w") as h5:
        _write_set(h5, set_name, ids, descriptors)
        if regions is not None:
            _write_set(h5, REGIONS, *regions)
        h5.attrs.update(dict(attrs or {}))


def read_regions(paths: hdf5.PathOrPaths) -> tuple[list[str], np.ndarray]:
    """(region ids, float32 [n, d]) of the shard files that hold regions; none from the others."""
    return _read(paths, REGIONS, required=False)


def read_descriptors(paths: hdf5.PathOrPaths, set_name: str) -> tuple[list[str], np.ndarray]:
    """(ids, float32 [n, d]) of ``set_name`` from shard files or combined ISC files, concatenated."""
    _check_set(set_name)
    return _read(paths, set_name, required=True)


def _read(paths: hdf5.PathOrPaths, name: str, required: bool) -> tuple[list[str], np.ndarray]:
    """Datasets ``name`` and ``<name>_ids`` of every file, concatenated; a file without them is an error when
    ``required``, else skipped."""
    ids: list[str] = []
    arrays = []
    for path in hdf5.as_paths(paths):
        with h5py.File(path, "r") as h5:
            if name not in h5:
                if required:
                    raise InputError(f"{path} holds no {name!r} descriptors (it has {sorted(h5.keys())})")
                continue
            ids.extend(hdf5.read_ids(h5[f"{name}_ids"]))
            arrays.append(h5[name][:].astype(np.float32, copy=False))
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise InputError(f"descriptor files of {name!r} mix dimensions {sorted(dims)}")
    return ids, hdf5.concatenate(arrays, (0, 0), np.float32)


def transform_shard(path: str | os.PathLike, out: str | os.PathLike,
                    transform: Callable[[np.ndarray], np.ndarray]) -> int:
    """Write shard ``path`` to ``out`` with its descriptors (and regions) mapped through ``transform`` (e.g. a
    whitening), keeping ids and attributes; returns the number of descriptors."""
    with h5py.File(path, "r") as h5:
        present = [name for name in SETS if name in h5]
        attrs = dict(h5.attrs)
    if len(present) != 1:
        raise InputError(f"{path} is not a one-set descriptor shard (it holds {present or 'no set'})")
    ids, descriptors = read_descriptors(path, present[0])
    region_ids, regions = read_regions(path)
    write_descriptor_shard(out, present[0], ids, transform(descriptors), attrs,
                           (region_ids, transform(regions)) if region_ids else None)
    return len(ids)


def gather_set(shards: Sequence[str | os.PathLike], out: str | os.PathLike, set_name: str) -> int:
    """Concatenate one set's descriptors of ``shards`` into one shard file ``out`` (the first's attributes);
    returns the number of descriptors."""
    ids, descriptors = read_descriptors(shards, set_name)
    write_descriptor_shard(out, set_name, ids, descriptors, read_attrs(shards[0]) if shards else {})
    return len(ids)


def read_attrs(path: str | os.PathLike) -> dict[str, object]:
    with h5py.File(path, "r") as h5:
        return dict(h5.attrs)


def combine_isc(out: str | os.PathLike, query_shards: Iterable[str | os.PathLike],
                reference_shards: Iterable[str | os.PathLike],
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Gather shard files into one ISC 2021 descriptor file (``query``, ``reference``,
    ``query_ids``, ``reference_ids``), optionally mapping descriptors through ``transform``
    (e.g. a whitening); the first shard's attributes are kept."""
    query_shards, reference_shards = list(query_shards), list(reference_shards)
    query_ids, query = read_descriptors(query_shards, "query")
    reference_ids, reference = read_descriptors(reference_shards, "reference")
    if transform is not None:
        query, reference = transform(query), transform(reference)
    if len(query) and len(reference) and query.shape[1] != reference.shape[1]:
        raise InputError(f"query descriptors have {query.shape[1]} dimensions, references {reference.shape[1]}")
    first = (query_shards + reference_shards)[:1]
    attrs = read_attrs(first[0]) if first else {}
    with atomic.replacing(out) as partial, h5py.File(partial, "w") as h5:
        _write_set(h5, "query", query_ids, query)
        _write_set(h5, "reference", reference_ids, reference)
        h5.attrs.update(attrs)
