"""Local recall: faiss kNN over every reference descriptor, votes per reference image.

Each reference shard gets its own index and is searched independently; the
per-shard candidate lists are gathered afterwards by :func:`select_candidates`.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from d2lv.io import tables
from d2lv.local.params import RecallParams, SingleCandidateRule
from d2lv.local.sift import DESCRIPTOR_DIM, dequantize
from d2lv.local.store import FeatureStore

#: Below this many descriptors a shard is searched exactly ("auto" factory).
EXACT_SEARCH_LIMIT = 50_000

BRANCH = "local"


def resolve_factory(factory: str, n_descriptors: int) -> str:
    """Turn ``"auto"`` into ``Flat`` for small shards and ``IVF<nlist>,Flat`` for large ones."""
    if factory != "auto":
        return factory
    if n_descriptors <= EXACT_SEARCH_LIMIT:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n_descriptors)))
    return f"IVF{min(max(nlist, 256), 65536)},Flat"


def build_index(store: FeatureStore, factory: str = "auto", seed: int = 0) -> faiss.Index:
    """An L2 faiss index over all RootSIFT descriptors of ``store`` (row i = descriptor i)."""
    vectors = dequantize(store.descriptors)
    spec = resolve_factory(factory, len(vectors))
    index = faiss.index_factory(DESCRIPTOR_DIM, spec, faiss.METRIC_L2)
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index) if "IVF" in spec else None
        needed = ivf.nlist if ivf is not None else 1
        if len(vectors) < needed:
            raise ValueError(
                f"index factory {spec!r} needs at least {needed} training descriptors, the shard has "
                f"{len(vectors)}; use local.index_factory: auto (or Flat) for small shards"
            )
        rng = np.random.default_rng(seed)
        sample = vectors[rng.permutation(len(vectors))[: max(needed * 64, 10_000)]]
        index.train(sample)
    index.add(vectors)
    return index


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    if "IVF" in type(index).__name__ or isinstance(index, faiss.IndexPreTransform):
        faiss.extract_index_ivf(index).nprobe = nprobe


#: Query descriptors searched at once (bounds the memory of the distance matrices).
BATCH_DESCRIPTORS = 65_536


def _votes_for_batch(distances: np.ndarray, rows: np.ndarray, query_image: np.ndarray,
                     references: FeatureStore, max_distance: float) -> pd.DataFrame:
    """Votes: each query descriptor votes once per reference image among its neighbours."""
    keep = (rows >= 0) & (distances <= max_distance)
    descriptor = np.broadcast_to(np.arange(len(rows))[:, None], rows.shape)[keep]
    hits = pd.DataFrame({
        "q": query_image[descriptor],
        "d": descriptor,
        "r": references.owner(rows[keep]),
        "dist": distances[keep],
    })
    best = hits.groupby(["q", "d", "r"], sort=False).dist.min().reset_index()
    return best.groupby(["q", "r"], sort=False).dist.agg(votes="size", dist_sum="sum").reset_index()


def search_shard(index: faiss.Index, references: FeatureStore, queries: FeatureStore,
                 params: RecallParams, progress: bool = True) -> pd.DataFrame:
    """Top ``params.topk`` references of this shard for every query, by votes."""
    set_nprobe(index, params.nprobe)
    if index.ntotal == 0 or len(queries.descriptors) == 0:
        return tables.empty_frame(tables.PAIRS)
    query_image = queries.owner(np.arange(len(queries.descriptors)))
    k = min(params.knn, index.ntotal)
    partials = []
    starts = range(0, len(queries.descriptors), BATCH_DESCRIPTORS)
    for start in tqdm(starts, desc="local recall", unit="batch", disable=not progress):
        stop = min(start + BATCH_DESCRIPTORS, len(queries.descriptors))
        distances, rows = index.search(dequantize(queries.descriptors[start:stop]), k)
        partials.append(_votes_for_batch(distances, rows, query_image[start:stop], references,
                                         params.max_distance))
    votes = pd.concat(partials).groupby(["q", "r"], sort=False).sum().reset_index()
    votes = votes[votes.votes >= params.min_votes]
    frame = pd.DataFrame({
        "query_id": np.asarray(queries.ids, dtype=object)[votes.q.to_numpy()],
        "reference_id": np.asarray(references.ids, dtype=object)[votes.r.to_numpy()],
        "branch": BRANCH,
        "votes": votes.votes.to_numpy(),
        "mean_distance": (votes.dist_sum / votes.votes).to_numpy(),
    })
    return rank_within_query(frame, params.topk)


def rank_within_query(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` best references per query: most votes, then closest."""
    return tables.rank_within_query(pairs, [("votes", False), ("mean_distance", True)], topk)


def select_candidates(shard_pairs: pd.DataFrame, topk: int, mode: str = "topk",
                      rule: SingleCandidateRule = SingleCandidateRule()) -> pd.DataFrame:
    """Gather per-shard pairs into the final candidate list of each query.

    ``mode="topk"`` keeps the ``topk`` references with most votes;
    ``mode="single"`` applies :class:`SingleCandidateRule`.
    """
    ranked = rank_within_query(shard_pairs, topk if mode == "topk" else 2)
    if mode == "topk":
        return ranked
    if mode != "single":
        raise ValueError(f"unknown local recall mode {mode!r}; expected 'topk' or 'single'")
    first = ranked[ranked["rank"] == 1].set_index("query_id")
    runner_votes = ranked[ranked["rank"] == 2].set_index("query_id").votes.reindex(first.index)
    alone = runner_votes.isna()
    wins = np.where(alone, first.votes > rule.min_votes_alone,
                    (first.votes > rule.min_votes) & (first.votes > runner_votes.fillna(0)))
    wins &= first.mean_distance < rule.max_mean_distance
    return first[wins].reset_index()[tables.PAIRS.names]
