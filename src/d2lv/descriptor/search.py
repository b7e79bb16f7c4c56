"""Cosine top-k search of global descriptors, and score normalisation against a background set.

The descriptors are unit vectors, so an exact inner-product search (faiss ``IndexFlatIP``)
ranks references by cosine similarity (:func:`search`), over every reference shard at once.

Background normalisation, as SSCD does for the ISC 2021 tracks: a raw cosine
similarity means different things for different queries: a busy photo is "close"
to many images, a plain one to few. Subtracting the similarity of the query to
its k-th nearest *background* image (images known not to be references, e.g. a
sample of unrelated photos; :func:`kth_background_similarity`) puts every query
on a common scale (:func:`normalise`), so one threshold, and micro-AP's single
ranking, works across queries.

Needs neither torch nor timm: the jobs that only search, whiten or export stay light.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import pandas as pd
from tqdm import tqdm

from d2lv.errors import InputError
from d2lv.io import tables

BRANCH = "global"


def search(query_ids: Sequence[str], query: np.ndarray, reference_ids: Sequence[str], reference: np.ndarray,
           topk: int = 20, batch_size: int = 16_384, progress: bool = True) -> pd.DataFrame:
    """The ``topk`` most similar references of every query (exact inner product; the
    descriptors are unit vectors, so this is cosine similarity). Columns: :data:`d2lv.io.tables.SIMILARITY_PAIRS`.
    """
    if topk < 1:
        raise InputError(f"topk must be at least 1, got {topk}")
    if len(query) == 0 or len(reference) == 0:
        return tables.empty_frame(tables.SIMILARITY_PAIRS)
    query = np.ascontiguousarray(query, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if query.shape[1] != reference.shape[1]:
        raise InputError(f"query descriptors have {query.shape[1]} dimensions, references {reference.shape[1]}")
    index = faiss.IndexFlatIP(reference.shape[1])
    index.add(reference)
    k = min(topk, index.ntotal)
    qids = np.asarray(query_ids, dtype=object)
    rids = np.asarray(reference_ids, dtype=object)
    partials = []
    starts = range(0, len(query), batch_size)
    for start in tqdm(starts, desc="global search", unit="batch", disable=not progress):
        stop = min(start + batch_size, len(query))
        similarity, rows = index.search(query[start:stop], k)
        keep = rows >= 0
        partials.append(pd.DataFrame({
            "query_id": np.repeat(qids[start:stop], k)[keep.ravel()],
            "reference_id": rids[rows[keep]],
            "similarity": similarity[keep],
        }))
    return rank_pairs(pd.concat(partials, ignore_index=True), topk)


def rank_pairs(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` most similar references per query and number them."""
    if pairs.empty:
        return tables.empty_frame(tables.SIMILARITY_PAIRS)
    ordered = tables.rank_within_query(pairs, [("similarity", False)], topk)
    ordered["similarity"] = ordered.similarity.astype(np.float32)
    return ordered[tables.SIMILARITY_PAIRS.names]


# --------------------------------------------------------------------------- background normalisation


def kth_background_similarity(queries: np.ndarray, background: np.ndarray, k: int = 1) -> np.ndarray:
    """Similarity of every query to its ``k``-th most similar background descriptor."""
    if len(background) < k:
        raise InputError(f"the background set has {len(background)} descriptors; background_k={k} needs "
                         f"at least {k}")
    index = faiss.IndexFlatIP(background.shape[1])
    index.add(np.ascontiguousarray(background, dtype=np.float32))
    similarities, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return similarities[:, k - 1]


def normalise(pairs: pd.DataFrame, query_ids: list[str], offsets: np.ndarray, beta: float = 1.0) -> pd.DataFrame:
    """``similarity - beta * offset[query]`` for every pair (``offsets`` aligned with ``query_ids``)."""
    by_query = pd.Series(offsets, index=query_ids)
    out = pairs.copy()
    out["similarity"] = (out.similarity - beta * by_query.reindex(out.query_id).to_numpy()).astype(np.float32)
    return out
