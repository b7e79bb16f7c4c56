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

from d2lv.descriptor.params import BackgroundParams
from d2lv.errors import InputError
from d2lv.io import tables
from d2lv.io.views import query_of

BRANCH = "global"


def search(query_ids: Sequence[str], query: np.ndarray, reference_ids: Sequence[str], reference: np.ndarray,
           topk: int = 20, batch_size: int = 16_384, progress: bool = True) -> pd.DataFrame:
    """The ``topk`` most similar references of every query (exact inner product; the
    descriptors are unit vectors, so this is cosine similarity). Columns: :data:`d2lv.io.tables.SIMILARITY_PAIRS`.

    faiss picks ``2 * topk +`` :data:`RESCORE_MARGIN` neighbours, :func:`exact_similarity` scores them again
    and the best ``topk`` stay: a query's pairs and similarities do not depend on the other queries searched.
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
    k = min(2 * topk + RESCORE_MARGIN, index.ntotal)
    qids = np.asarray(query_ids, dtype=object)
    rids = np.asarray(reference_ids, dtype=object)
    partials = []
    starts = range(0, len(query), batch_size)
    for start in tqdm(starts, desc="global search", unit="batch", disable=not progress):
        stop = min(start + batch_size, len(query))
        _, rows = index.search(query[start:stop], k)
        similarity = exact_similarity(query[start:stop], reference, rows)
        keep = rows >= 0
        partials.append(rank_pairs(pd.DataFrame({
            "query_id": np.repeat(qids[start:stop], k)[keep.ravel()],
            "reference_id": rids[rows[keep]],
            "similarity": similarity[keep],
        }), topk))
    return rank_pairs(pd.concat(partials, ignore_index=True), topk)


#: Neighbours faiss picks beyond those kept, for :func:`exact_similarity` to rank. faiss' similarities differ in
#: the last bits with the number of queries searched together (a sequential loop for a few, BLAS for many), so
#: near-ties around the last one kept could swap in or out; with the margin, the best by exact similarity are
#: among the candidates whatever the batch.
RESCORE_MARGIN = 8

#: Query rows :func:`exact_similarity` scores at once (bounds the gathered float64 [rows, k, d] block).
RESCORE_ROWS = 256


def exact_similarity(query: np.ndarray, reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inner products ``query[i] . reference[rows[i, j]]``, float32 ``[n, k]`` (``rows`` ``[n, k]``).

    Each is a float64 sum of products, rounded once: unlike faiss' (or BLAS') float32 distances it does not
    depend on how many queries are scored together, so a query searched alone gets the similarities of the
    batch. Entries whose row is negative (faiss' "no neighbour") hold a meaningless value.
    """
    out = np.empty(rows.shape, np.float32)
    for start in range(0, len(rows), RESCORE_ROWS):
        stop = min(start + RESCORE_ROWS, len(rows))
        gathered = reference[rows[start:stop]].astype(np.float64)
        out[start:stop] = (gathered * query[start:stop, None, :].astype(np.float64)).sum(axis=2)
    return out


def rank_pairs(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` most similar references per query and number them."""
    if pairs.empty:
        return tables.empty_frame(tables.SIMILARITY_PAIRS)
    ordered = tables.rank_within_query(pairs, [("similarity", False)], topk)
    ordered["similarity"] = ordered.similarity.astype(np.float32)
    return ordered[tables.SIMILARITY_PAIRS.names]


# --------------------------------------------------------------------------- background normalisation


def kth_background_similarity(queries: np.ndarray, background: np.ndarray, k: int = 1) -> np.ndarray:
    """Similarity of every query to its ``k``-th most similar background descriptor.

    faiss picks ``k +`` :data:`RESCORE_MARGIN` candidates, :func:`exact_similarity` scores them: a query's
    value does not depend on the other queries searched.
    """
    if len(background) < k:
        raise InputError(f"the background set has {len(background)} descriptors; background_k={k} needs "
                         f"at least {k}")
    background = np.ascontiguousarray(background, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.IndexFlatIP(background.shape[1])
    index.add(background)
    _, rows = index.search(queries, min(k + RESCORE_MARGIN, index.ntotal))
    return np.sort(exact_similarity(queries, background, rows), axis=1)[:, -k]


def normalise(pairs: pd.DataFrame, query_ids: list[str], offsets: np.ndarray, beta: float = 1.0) -> pd.DataFrame:
    """``similarity - beta * offset[query]`` for every pair (``offsets`` aligned with ``query_ids``)."""
    by_query = pd.Series(offsets, index=query_ids)
    out = pairs.copy()
    out["similarity"] = (out.similarity - beta * by_query.reindex(out.query_id).to_numpy()).astype(np.float32)
    return out


def query_candidates(query_ids: Sequence[str], queries: np.ndarray, region_ids: Sequence[str], regions: np.ndarray,
                     reference_ids: Sequence[str], references: np.ndarray, topk: int,
                     background: np.ndarray | None = None, normalisation: BackgroundParams = BackgroundParams(),
                     progress: bool = True) -> pd.DataFrame:
    """Each query's ``topk`` references by (whitened) global descriptor, from its own descriptor and those of
    its regions (:mod:`d2lv.descriptor.regions`: each reference keeps its best region), normalised against
    the ``background`` descriptors where there are some. Columns: :data:`d2lv.io.tables.SIMILARITY_PAIRS`."""
    if len(region_ids):
        query_ids, queries = [*query_ids, *region_ids], np.concatenate([queries, regions])
    pairs = search(query_ids, queries, reference_ids, references, topk, progress=progress)
    if background is not None:
        offsets = kth_background_similarity(queries, background, normalisation.background_k)
        pairs = normalise(pairs, list(query_ids), offsets, normalisation.background_beta)
    if len(region_ids):
        pairs = rank_pairs(pairs.assign(query_id=pairs.query_id.map(query_of)), topk)
    return pairs
