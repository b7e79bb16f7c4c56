"""Local recall: faiss kNN over every reference descriptor, votes per reference image.

One index holds every reference descriptor (:mod:`d2lv.local.index`); each query shard searches it
once and gets its queries' candidates over the whole collection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io import tables
from d2lv.local.params import RecallParams, SingleCandidateRule
from d2lv.local.sift import dequantize
from d2lv.local.store import FeatureStore

BRANCH = "local"

#: Query descriptors searched at once (bounds the memory of the distance matrices); an image with more is
#: searched alone.
BATCH_DESCRIPTORS = 65_536


def _votes_for_batch(distances: np.ndarray, references: np.ndarray, query_image: np.ndarray,
                     max_distance: float) -> pd.DataFrame:
    """Votes: each query descriptor votes once per reference image among its neighbours.

    ``references`` [n, k] are catalogue rows (-1: no neighbour); ``query_image`` [n] the query of each row.
    """
    keep = (references >= 0) & (distances <= max_distance)
    descriptor = np.broadcast_to(np.arange(len(references))[:, None], references.shape)[keep]
    hits = pd.DataFrame({"q": query_image[descriptor], "d": descriptor, "r": references[keep],
                         "dist": distances[keep]})
    best = hits.groupby(["q", "d", "r"], sort=False).dist.min().reset_index()
    return best.groupby(["q", "r"], sort=False).dist.agg(votes="size", dist_sum="sum").reset_index()


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Lists visited per search, through faiss' parameter space: it reaches the IVF level of any index (an
    OPQ pre-transform, or the GPU shards of :func:`d2lv.local.index.on_gpus`), where setting the attribute
    on :func:`faiss.extract_index_ivf` would fail for a GPU copy."""
    space = faiss.GpuParameterSpace() if hasattr(faiss, "GpuParameterSpace") else faiss.ParameterSpace()
    space.set_index_parameter(index, "nprobe", nprobe)


def search_index(index: faiss.Index, catalogue: pd.DataFrame, queries: FeatureStore, params: RecallParams,
                 keep: int, progress: bool = True) -> pd.DataFrame:
    """The ``keep`` references of the whole collection with most votes, for every query (ranked).

    ``index`` holds every reference descriptor with its image's number as id; ``catalogue`` maps
    numbers to reference ids (:func:`d2lv.local.index.catalogue`).
    """
    set_nprobe(index, params.nprobe)
    if index.ntotal == 0 or len(queries.descriptors) == 0:
        return tables.empty_frame(tables.PAIRS)
    numbers = catalogue.number.to_numpy()
    query_image = queries.owner(np.arange(len(queries.descriptors)))
    k = min(params.knn, index.ntotal)
    partials = []
    batches = image_batches(queries.offsets, BATCH_DESCRIPTORS)
    with sequential_distances():
        for start, stop in tqdm(batches, desc="local recall", unit="batch", disable=not progress):
            distances, ids = index.search(dequantize(queries.descriptors[start:stop]), k)
            rows = np.where(ids >= 0, np.searchsorted(numbers, ids), -1)
            partials.append(_votes_for_batch(distances, rows, query_image[start:stop], params.max_distance))
    votes = pd.concat(partials).groupby(["q", "r"], sort=False).sum().reset_index()
    votes = votes[votes.votes >= params.min_votes]
    frame = pd.DataFrame({
        "query_id": np.asarray(queries.ids, dtype=object)[votes.q.to_numpy()],
        "reference_id": catalogue.reference_id.to_numpy(dtype=object)[votes.r.to_numpy()],
        "branch": BRANCH,
        "votes": votes.votes.to_numpy(),
        "mean_distance": (votes.dist_sum / votes.votes).to_numpy(),
    })
    return rank_within_query(frame, keep)


def image_batches(offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Descriptor row ranges ``[start, stop)`` that cover whole images (``offsets`` as
    :attr:`d2lv.local.store.FeatureStore.offsets`), each of at most ``limit`` rows unless one image has more.

    An image is never split over two searches: its votes then come from one search, so they do not depend on
    which other images it shares its batch with.
    """
    batches = []
    first, last = 0, len(offsets) - 1  # images first..last-1 are left
    while first < last:
        end = max(int(np.searchsorted(offsets, offsets[first] + limit, side="right")) - 1, first + 1)
        if offsets[end] > offsets[first]:  # images without descriptors need no search
            batches.append((int(offsets[first]), int(offsets[end])))
        first = end
    return batches


@contextlib.contextmanager
def sequential_distances() -> Iterator[None]:
    """Make faiss compute brute-force distances one query at a time (its SIMD loop), never by BLAS.

    faiss switches to a BLAS matrix product above ``distance_compute_blas_threshold`` (queries x dimensions),
    whose last bits differ: the coarse quantiser's distances, and so an IVF-PQ index's distances, would depend
    on how many descriptors are searched together, and a query searched alone would get other votes' distances
    than in a batch. The threshold is process-wide; it is restored on exit.
    """
    saved = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 2**31 - 1
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = saved


def rank_within_query(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` best references per query: most votes, then closest."""
    return tables.rank_within_query(pairs, [("votes", False), ("mean_distance", True)], topk)


def pairs_to_keep(topk: int, mode: str) -> int:
    """How many references per query :func:`select_candidates` needs: ``topk``, or winner and runner-up."""
    return topk if mode == "topk" else 2


def select_candidates(shard_pairs: pd.DataFrame, topk: int, mode: str = "topk",
                      rule: SingleCandidateRule = SingleCandidateRule()) -> pd.DataFrame:
    """Gather per-shard pairs into the final candidate list of each query.

    ``mode="topk"`` keeps the ``topk`` references with most votes;
    ``mode="single"`` applies :class:`SingleCandidateRule`.
    """
    ranked = rank_within_query(shard_pairs, pairs_to_keep(topk, mode))
    if mode == "topk":
        return ranked
    if mode != "single":
        raise InputError(f"unknown local recall mode {mode!r}; expected 'topk' or 'single'")
    first = ranked[ranked["rank"] == 1].set_index("query_id")
    runner_votes = ranked[ranked["rank"] == 2].set_index("query_id").votes.reindex(first.index)
    alone = runner_votes.isna()
    wins = np.where(alone, first.votes > rule.single_min_votes_alone,
                    (first.votes > rule.single_min_votes) & (first.votes > runner_votes.fillna(0)))
    wins &= first.mean_distance < rule.single_max_mean_distance
    return first[wins].reset_index()[tables.PAIRS.names]
