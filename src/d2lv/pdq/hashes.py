"""PDQ perceptual hashes (Meta's ThreatExchange): one 256-bit hash per image, matched by Hamming distance.

The hash branch of the pipeline, and the benchmark's PDQ baseline. A hash sees the whole image at
once, from its low frequencies: it finds mild copies of smooth, low-texture images (gradients, flat
colour, paper) where SIFT finds too few keypoints to verify, and it misses crops and pastes.

References get one hash each; queries get all eight dihedral variants (the
rotations by 0/90/180/270 degrees and the four mirrorings), so a rotated or
mirrored copy is still found. The distance of a (query, reference) pair is the
smallest Hamming distance over the query's variants.

Hashing and matching are separate steps: each shard's hashes go to an HDF5
file (:func:`write_hashes`), and :func:`match` runs on whatever
:func:`read_hashes` gathers.

HDF5 layout (all datasets at the root):

========= ================ =====================================================
ids       str   [n]        image ids
hashes    uint8 [n, v, 32] ``np.packbits`` of pdqhash's 256 bits; ``v`` = 1
                           (one hash) or 8 (dihedral variants, in pdqhash order)
quality   int32 [n]        PDQ quality 0..100 of the upright image; below
                           :data:`d2lv.pdq.params.RELIABLE_QUALITY` the image is
                           too flat for its hash to be reliable
========= ================ =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import faiss
import h5py
import numpy as np
import pandas as pd
import pdqhash
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io import atomic, hdf5, tables
from d2lv.io.images import DEFAULT_MAX_PIXELS, load_image
from d2lv.io.views import query_of
from d2lv.pdq.params import PdqParams

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8

#: pdqhash.compute_dihedral's order, as numpy operations on the upright image.
DIHEDRAL_VARIANTS = ("identity", "rot90", "rot180", "rot270", "flip_ud", "flip_lr", "transpose", "antitranspose")

ImageSource = str | os.PathLike | np.ndarray


@dataclass
class PdqHashes:
    """Hashes of a set of images: ``hashes[i, v]`` is variant ``v`` of image ``ids[i]``."""

    ids: list[str]
    hashes: np.ndarray  # uint8 [n, v, 32]
    quality: np.ndarray  # int32 [n]

    def __post_init__(self) -> None:
        hashes = np.ascontiguousarray(self.hashes, dtype=np.uint8)
        if hashes.ndim == 2:  # one hash per image
            hashes = hashes[:, None, :]
        if hashes.ndim != 3 or hashes.shape[0] != len(self.ids) or hashes.shape[2] != HASH_BYTES:
            raise ValueError(f"expected hashes of shape [{len(self.ids)}, variants, {HASH_BYTES}], got {hashes.shape}")
        self.hashes = hashes
        self.quality = np.asarray(self.quality, dtype=np.int32).reshape(len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def variants(self) -> int:
        return self.hashes.shape[1]

    def subset(self, keep: np.ndarray) -> "PdqHashes":
        keep = np.asarray(keep, dtype=bool)
        return PdqHashes([key for key, k in zip(self.ids, keep) if k], self.hashes[keep], self.quality[keep])


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """pdqhash's 0/1 vector(s) ``[..., 256]`` to bytes ``uint8 [..., 32]``."""
    return np.packbits(np.asarray(bits, dtype=np.uint8), axis=-1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes (broadcasting over leading axes)."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1)


def _rgb(image: ImageSource, max_pixels: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(load_image(image, max_pixels))


def hash_image(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """PDQ hash of an ``HxWx3`` uint8 RGB image: (``uint8 [32]``, quality 0..100)."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return pack_bits(bits), int(quality)


def hash_image_dihedral(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """The eight dihedral variants' hashes (``uint8 [8, 32]``, :data:`DIHEDRAL_VARIANTS` order)
    and the quality of the upright image."""
    bits, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    # pdqhash returns one quality for all variants (older releases: a list of eight).
    return pack_bits(np.stack(bits)), int(np.ravel(quality)[0])


def hash_images(ids: Sequence[str], images: Sequence[ImageSource], dihedral: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True) -> PdqHashes:
    """Hash images given as paths (loaded with :func:`d2lv.io.images.load_image`) or RGB arrays.

    ``dihedral=True`` (queries) keeps all eight variants, ``False`` (references) one hash.
    Unreadable files raise :class:`d2lv.io.images.ImageError`; pass manifest-approved paths.
    """
    if len(ids) != len(images):
        raise ValueError(f"{len(ids)} ids but {len(images)} images")
    variants = 8 if dihedral else 1
    hashes = np.zeros((len(ids), variants, HASH_BYTES), np.uint8)
    quality = np.zeros(len(ids), np.int32)
    desc = "pdq (dihedral)" if dihedral else "pdq"
    for i, image in enumerate(tqdm(images, desc=desc, unit="img", disable=not progress)):
        rgb = _rgb(image, max_pixels)
        packed, quality[i] = hash_image_dihedral(rgb) if dihedral else hash_image(rgb)
        hashes[i] = packed.reshape(variants, HASH_BYTES)
    return PdqHashes(list(ids), hashes, quality)


def hash_manifest(manifest: pd.DataFrame, dihedral: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                  progress: bool = True) -> PdqHashes:
    """Hash the usable images of a manifest (see :func:`d2lv.io.manifest.read_manifest`)."""
    return hash_images(list(manifest.id), list(manifest.path), dihedral, max_pixels, progress)


def write_hashes(path: str | os.PathLike, hashes: PdqHashes, attrs: Mapping[str, object] | None = None) -> None:
    with atomic.replacing(path) as partial, h5py.File(partial, "w") as h5:
        hdf5.write_ids(h5, "ids", hashes.ids)
        h5.create_dataset("hashes", data=hashes.hashes)
        h5.create_dataset("quality", data=hashes.quality)
        h5.attrs.update({"variants": hashes.variants, "hash_bits": HASH_BITS, **dict(attrs or {})})


def read_hashes(paths: hdf5.PathOrPaths) -> PdqHashes:
    """Read and concatenate shard files (all with the same number of variants)."""
    ids: list[str] = []
    hashes, quality = [], []
    for path in hdf5.as_paths(paths):
        with h5py.File(path, "r") as h5:
            ids.extend(hdf5.read_ids(h5["ids"]))
            hashes.append(h5["hashes"][:])
            quality.append(h5["quality"][:])
    if not hashes:
        return PdqHashes([], np.zeros((0, 1, HASH_BYTES), np.uint8), np.zeros(0, np.int32))
    variants = {h.shape[1] for h in hashes}
    if len(variants) > 1:
        raise InputError(f"hash files mix {sorted(variants)} variants per image; gather one set at a time")
    return PdqHashes(ids, np.concatenate(hashes), np.concatenate(quality))


def build_index(references: PdqHashes) -> faiss.IndexBinaryFlat:
    """Exact binary index over the references' first variant (row i = reference i)."""
    index = faiss.IndexBinaryFlat(HASH_BITS)
    if len(references):
        index.add(np.ascontiguousarray(references.hashes[:, 0]))
    return index


def match(queries: PdqHashes, references: PdqHashes, topk: int = 20, max_distance: int | None = None,
          min_quality: int = 0, batch_size: int = 4096, progress: bool = True) -> pd.DataFrame:
    """The ``topk`` nearest references of every query by min Hamming distance over its variants.

    Pairs farther than ``max_distance`` are dropped; images (either side) whose PDQ quality
    is below ``min_quality`` take no part. Ties in distance are broken by reference id. A pair's
    ``quality`` is the lower of its two images'. Columns: :data:`d2lv.io.tables.PDQ_PAIRS`.
    """
    if topk < 1:
        raise InputError(f"topk must be at least 1, got {topk}")
    if min_quality > 0:
        queries = queries.subset(queries.quality >= min_quality)
        references = references.subset(references.quality >= min_quality)
    if len(queries) == 0 or len(references) == 0:
        return tables.empty_frame(tables.PDQ_PAIRS)
    index = build_index(references)
    # A reference in the true top k is within the top k of the variant that reaches its
    # minimum distance, so searching k per variant is exact (up to ties at the k-th place).
    k = min(topk, index.ntotal)
    variants = queries.variants
    partials = []
    starts = range(0, len(queries), batch_size)
    for start in tqdm(starts, desc="pdq match", unit="batch", disable=not progress):
        stop = min(start + batch_size, len(queries))
        codes = np.ascontiguousarray(queries.hashes[start:stop].reshape(-1, HASH_BYTES))
        distances, rows = index.search(codes, k)
        query = np.repeat(np.arange(start, stop), variants * k)
        partials.append(pd.DataFrame({"q": query, "r": rows.ravel(), "hamming": distances.ravel()}))
    hits = pd.concat(partials, ignore_index=True)
    hits = hits[hits.r >= 0]
    if max_distance is not None:
        hits = hits[hits.hamming <= max_distance]
    best = hits.groupby(["q", "r"], sort=False).hamming.min().reset_index()
    q, r = best.q.to_numpy(), best.r.to_numpy()
    frame = pd.DataFrame({
        "query_id": np.asarray(queries.ids, dtype=object)[q],
        "reference_id": np.asarray(references.ids, dtype=object)[r],
        "hamming": best.hamming.to_numpy(np.int32),
        "quality": np.minimum(queries.quality[q], references.quality[r]),
    })
    return rank_pairs(frame, topk)


def query_candidates(views: PdqHashes, references: PdqHashes, params: PdqParams,
                     progress: bool = True) -> pd.DataFrame:
    """Each query's ``params.topk`` nearest references, from the hashes of its views (the whole query, its
    crops: :mod:`d2lv.io.views` ids): every view proposes references, each keeps its closest view."""
    pairs = match(views, references, params.topk, params.max_distance, params.min_quality, progress=progress)
    return rank_pairs(pairs.assign(query_id=pairs.query_id.map(query_of)), params.topk)


def rank_pairs(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` closest references per query, score and number them.

    Also gathers per-shard outputs of :func:`match`: concatenate them and rank again.
    """
    if pairs.empty:
        return tables.empty_frame(tables.PDQ_PAIRS)
    ordered = tables.rank_within_query(pairs, [("hamming", True)], topk)
    ordered["hamming"] = ordered.hamming.astype(np.int32)
    ordered["quality"] = ordered.quality.astype(np.int32)
    ordered["score"] = (1.0 - ordered.hamming / HASH_BITS).astype(np.float32)
    return ordered[tables.PDQ_PAIRS.names]


def hex_hash(packed: np.ndarray) -> str:
    """A packed hash as ThreatExchange writes it: 64 lower-case hex digits, the first bit most significant."""
    return bytes(np.asarray(packed, dtype=np.uint8)).hex()


def write_threatexchange(path: str | os.PathLike, hashes: PdqHashes) -> None:
    """One line ``hash,quality,id`` per image, as ThreatExchange's ``pdq-photo-hasher`` prints them (with the
    image id where it prints the file name): the format hash-sharing lists and HMA banks take in."""
    with atomic.replacing(path) as partial, open(partial, "w") as f:
        for image_id, packed, quality in zip(hashes.ids, hashes.hashes[:, 0], hashes.quality):
            f.write(f"{hex_hash(packed)},{int(quality)},{image_id}\n")
