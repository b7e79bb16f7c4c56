"""Score normalisation against a background set, as SSCD does for the ISC 2021 tracks.

A raw cosine similarity means different things for different queries: a busy
photo is "close" to many images, a plain one to few. Subtracting the
similarity of the query to its k-th nearest *background* image (images known
not to be references, e.g. a sample of unrelated photos) puts every query on
a common scale, so one threshold, and micro-AP's single ranking, works across
queries.
"""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd


def kth_background_similarity(queries: np.ndarray, background: np.ndarray, k: int = 1) -> np.ndarray:
    """Similarity of every query to its ``k``-th most similar background descriptor."""
    if len(background) < k:
        raise ValueError(f"the background set has {len(background)} descriptors; background_k={k} needs "
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
