"""The crop view's ids: how a query's crops are named, and how their tables map back to the query.

A query may have several crops (``detect.max_crops``). Its most confident crop keeps the query's
own id, so that the crop view of a query with one crop reads like its query view; a further crop
of rank ``k`` is ``<query id>/<k>``. Image ids are file stems and never hold a ``/``, so the way
back is unambiguous. The crop view's tables (SIFT features, candidates, verification scores) are
keyed by crop id; the merge keeps, per query and reference, the best crop's row
(:func:`best_per_query`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd

RANK_SEPARATOR = "/"


def crop_id(query_id: str, rank: int) -> str:
    """The id of a query's crop of ``rank`` (1: the most confident box)."""
    return query_id if rank == 1 else f"{query_id}{RANK_SEPARATOR}{rank}"


def query_of(view_id: str) -> str:
    """The query a crop id (or a query id) belongs to."""
    return view_id.split(RANK_SEPARATOR, 1)[0]


def pairs_in_view(pairs: pd.DataFrame, view_ids: Collection[str]) -> pd.DataFrame:
    """Every pair of ``pairs`` (``query_id``, ``reference_id``, keyed by query or crop id) once for each
    of ``view_ids`` that shows its query: the pairs a view verifies, whichever view proposed them."""
    keys = pairs[["query_id", "reference_id"]].assign(query=pairs.query_id.map(query_of).astype(object))
    keys = keys.drop_duplicates(["query", "reference_id"])
    views = pd.DataFrame({"view": pd.Series(list(view_ids), dtype=object)})
    views["query"] = views.view.map(query_of).astype(object)
    expanded = keys.merge(views, on="query", how="inner")
    return (expanded[["view", "reference_id"]].rename(columns={"view": "query_id"})
            .sort_values(["query_id", "reference_id"], kind="stable").reset_index(drop=True))


def best_per_query(frame: pd.DataFrame, keys: Sequence[str], by: Sequence[str],
                   ascending: Sequence[bool]) -> pd.DataFrame:
    """``frame`` keyed by query id: of the rows that its crops give one key (``query_id`` and ``keys``
    but for the crop), the first when sorted ``by`` (e.g. the most inliers)."""
    frame = frame.assign(query_id=frame.query_id.map(query_of))
    best = frame.sort_values(list(by), ascending=list(ascending), kind="stable")
    return best.drop_duplicates(["query_id", *keys]).sort_index().reset_index(drop=True)
