"""One local index over every reference descriptor, built by fan-out (the way faiss builds billion-scale
indexes: ``faiss/contrib/ondisk.py``, and the wiki's "Indexing 1G vectors").

1. :func:`train_index`, once: the coarse quantiser and the product quantiser, on a seeded sample of
   descriptors from the first reference shards. The result is an empty, trained index.
2. :func:`add_shard`, one job per reference shard: the shard's descriptors encoded into a copy of the
   trained index. Each descriptor's faiss id is its image's *reference number*
   (:func:`reference_numbers`: shard and row), so a search returns votes for references directly.
3. :func:`merge_shards`: every shard's inverted lists into one index whose lists live in one
   ``.ivfdata`` file beside it, memory-mapped when read (:func:`read_index`), so that search jobs
   share the page cache instead of each loading the index.
4. :func:`d2lv.local.recall.search_index`, one job per query shard: each query's top references over
   the whole collection.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from faiss.contrib.clustering import train_ivf_index_with_2level
from faiss.contrib.ondisk import merge_ondisk

from d2lv.device import faiss_gpus
from d2lv.errors import D2lvError
from d2lv.local.sift import DESCRIPTOR_DIM, dequantize
from d2lv.local.store import FeatureStore

#: Bits of a reference number that hold the image's row in its shard store.
ROW_BITS = 32
#: Training points per coarse centroid below which ``auto`` chooses fewer lists: faiss' guideline is 30 to
#: 256 points per centroid (its k-means warns below 39, which ``train_index`` silences down to this).
POINTS_PER_CENTROID = 30
#: Coarse k-means learns from at most this many points per centroid (faiss subsamples the rest): four
#: times fewer than faiss' default 256, and as many lists, for a quarter of the training time.
MAX_POINTS_PER_CENTROID = 64
#: Product-quantiser codes need this many training descriptors (256 centroids per sub-quantiser, 39 points each).
PQ_MIN_TRAINING = 256 * 39
#: Bytes of the product-quantiser code of one descriptor chosen by ``auto`` (plus 8 for its id).
AUTO_PQ_BYTES = 16
#: Descriptors per inverted list ``auto`` aims at. A query descriptor scans ``nprobe`` lists, so with lists of
#: a fixed length its scan costs the same at any collection size; only finding the lists grows, slowly.
AUTO_LIST_LENGTH = 256
#: From this many coarse centroids on, ``auto`` finds the nearest with an HNSW graph rather than comparing
#: with each (whose cost grows with the list count), and trains them by two-level k-means.
HNSW_QUANTISER_FROM = 8_192
#: Most lists ``auto`` chooses (a million lists at 256 descriptors each is 268M descriptors).
AUTO_MAX_LISTS = 2 ** 20
#: Descriptors :func:`add_shard` encodes at once (their float32 copy: 32 MB).
ADD_BATCH = 65_536


def auto_factory(n_descriptors: int, n_training: int) -> str:
    """The factory string ``auto`` stands for, for a collection of ``n_descriptors`` descriptors trained
    on ``n_training`` of them: ``IVF<nlist>,PQ16`` with lists of about 256 descriptors (a power of two, as
    many as the sample can train at 30 points per list), an HNSW quantiser from 8,192 lists on, and plain
    ``Flat`` codes for a sample too small to train a product quantiser (tiny collections)."""
    wanted = min(max(n_descriptors / AUTO_LIST_LENGTH, 1), AUTO_MAX_LISTS)
    nlist = 2 ** round(math.log2(wanted))
    while nlist > 1 and nlist * POINTS_PER_CENTROID > n_training:
        nlist //= 2
    quantiser = f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTISER_FROM else f"IVF{nlist}"
    codes = f"PQ{AUTO_PQ_BYTES}" if n_training >= PQ_MIN_TRAINING else "Flat"
    return f"{quantiser},{codes}"


def training_sample(stores: Sequence[FeatureStore], size: int, seed: int) -> np.ndarray:
    """A seeded sample of at most ``size`` descriptors of ``stores``, as float32 RootSIFT."""
    descriptors = np.concatenate([s.descriptors for s in stores]) if stores else np.zeros((0, DESCRIPTOR_DIM))
    if len(descriptors) > size:
        rows = np.sort(np.random.default_rng(seed).choice(len(descriptors), size, replace=False))
        descriptors = descriptors[rows]
    return dequantize(descriptors)


def train_index(sample: np.ndarray, factory: str, n_descriptors: int, device: str = "auto") -> faiss.Index:
    """An empty index of ``factory`` (or :func:`auto_factory`) trained on ``sample``.

    Raises:
        D2lvError: the factory is not an IVF index (only those merge on disk), or the sample is too small.
    """
    spec = auto_factory(n_descriptors, len(sample)) if factory == "auto" else factory
    try:
        index = faiss.index_factory(DESCRIPTOR_DIM, spec, faiss.METRIC_L2)
    except RuntimeError as err:
        raise D2lvError(f"local.index_factory {spec!r} is not a faiss factory string: {err}") from None
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        raise D2lvError(f"local.index_factory {spec!r} is not an IVF index; the shards' inverted lists can "
                        "only be merged into one index for IVF indexes (e.g. IVF4096,PQ16)") from None
    if len(sample) < ivf.nlist * POINTS_PER_CENTROID // 4:
        raise D2lvError(f"local.index_factory {spec!r} has {ivf.nlist} lists but only {len(sample)} training "
                        "descriptors were sampled; use local.index_factory: auto, fewer lists, or more "
                        "fit_images")
    gpus = faiss_gpus(device)
    if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
        _train_two_level(index, sample, bool(gpus))
        return index
    ivf.cp.max_points_per_centroid = MAX_POINTS_PER_CENTROID
    ivf.cp.min_points_per_centroid = POINTS_PER_CENTROID
    if gpus:  # k-means assignments on the GPU; the trained index itself stays on the CPU
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    index.train(sample)
    return index


def _train_two_level(index: faiss.Index, sample: np.ndarray, gpu: bool) -> None:
    """Train ``index``'s many coarse centroids as faiss does at billion scale: k-means into about sqrt(nlist)
    clusters, then k-means within each (``faiss.contrib.clustering``). One k-means over every centroid
    compares each point with each centroid: tens of minutes on 2 cores at 32k lists, where this takes 45 s."""
    with contextlib.redirect_stdout(io.StringIO()):  # the faiss helper prints its arguments
        train_ivf_index_with_2level(index, sample, gpu=gpu, min_points_per_centroid=POINTS_PER_CENTROID)


def reference_numbers(shard: int, n_images: int) -> np.ndarray:
    """The faiss ids of the images of reference shard ``shard``: shard in the high bits, row in the low."""
    return (np.int64(shard) << ROW_BITS) + np.arange(n_images, dtype=np.int64)


def add_shard(trained: faiss.Index, store: FeatureStore, shard: int) -> faiss.Index:
    """A copy of ``trained`` holding every descriptor of reference shard ``shard``, id = its image's number.

    Descriptors are encoded :data:`ADD_BATCH` at a time, so the job's memory does not grow with the shard."""
    index = faiss.clone_index(trained)
    numbers = reference_numbers(shard, len(store))[store.owner(np.arange(len(store.descriptors)))]
    for start in range(0, len(numbers), ADD_BATCH):
        index.add_with_ids(dequantize(store.descriptors[start:start + ADD_BATCH]), numbers[start:start + ADD_BATCH])
    return index


def ivfdata_path(index_path: str | os.PathLike) -> Path:
    """Where the merged index keeps its inverted lists: beside it, same name, ``.ivfdata``."""
    return Path(index_path).with_suffix(".ivfdata")


def merge_shards(trained: faiss.Index, shard_indexes: Sequence[str | os.PathLike],
                 out: str | os.PathLike) -> None:
    """Write ``out`` (the trained index) and its ``.ivfdata`` (every shard's lists).

    Both are written in a temporary folder beside ``out`` and renamed into place, so no search ever
    reads a half-written index; the index records only the lists' file name (read with
    :func:`read_index`, it finds them in its own folder).
    """
    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        partial = Path(scratch) / out.name
        merged = faiss.clone_index(trained)
        merge_ondisk(merged, [str(p) for p in shard_indexes], str(ivfdata_path(partial)))
        faiss.write_index(merged, str(partial))
        del merged
        os.replace(ivfdata_path(partial), ivfdata_path(out))
        os.replace(partial, out)


def read_index(path: str | os.PathLike) -> faiss.Index:
    """The merged index, its inverted lists memory-mapped from the ``.ivfdata`` beside it."""
    with _stdout_to_stderr():  # faiss prints where it found the lists: output of d2lv query is stdout's
        return faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what C code prints to standard output to standard error meanwhile (file descriptor 1 to 2)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def open_merged(path: str | os.PathLike, device: str = "auto") -> faiss.Index:
    """The merged index for searching: its lists memory-mapped, on every GPU ``device`` selects."""
    return on_gpus(read_index(path), faiss_gpus(device))


def catalogue(stores: Sequence[tuple[int, FeatureStore]]) -> pd.DataFrame:
    """``number, reference_id`` of every image of the ``(shard, store)`` pairs, by number."""
    frames = [pd.DataFrame({"number": reference_numbers(shard, len(store)), "reference_id": store.ids})
              for shard, store in stores]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"number": pd.Series(dtype="int64"), "reference_id": pd.Series(dtype=str)})
    return frame.sort_values("number", kind="stable").reset_index(drop=True)


def index_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of a merged index: its file and its inverted lists."""
    return sum(p.stat().st_size for p in (Path(path), ivfdata_path(path)) if p.exists())


def on_gpus(index: faiss.Index, gpus: int) -> faiss.Index:
    """``index`` copied onto ``gpus`` GPUs (sharded), with float16 lookup tables as the original method used;
    ``index`` itself when ``gpus`` is 0, or (with a warning) when faiss cannot copy it. An HNSW quantiser has
    no GPU version: it stays on the CPU, where faiss allows that."""
    if not gpus:
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16LookupTables = True
    options.shard = True
    if hasattr(options, "allowCpuCoarseQuantizer"):  # faiss >= 1.8
        options.allowCpuCoarseQuantizer = True
    try:
        return faiss.index_cpu_to_all_gpus(index, options, ngpu=gpus)
    except RuntimeError as err:
        warnings.warn(f"the local index stays on the CPU: faiss cannot copy it to the GPU ({err})", stacklevel=2)
        return index
