"""Evaluation as defined by the ISC 2021 matching track.

All predictions of all queries are ranked together by score (micro
averaging). On equal scores non-matches rank first, so a tie can never
improve a result. Recall is measured against every ground-truth pair, so a
pair that was never predicted counts as missed; given the query set, pairs
of ground-truth queries that are not in it are left out (and counted).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from d2lv.errors import D2lvError, InputError
from d2lv.io import isc
from d2lv.io.images import box_iou


@dataclass(frozen=True)
class PRCurve:
    scores: np.ndarray  # descending, one entry per prediction
    precision: np.ndarray
    recall: np.ndarray


def precision_recall(scores: np.ndarray, is_match: np.ndarray, n_positives: int) -> PRCurve:
    """Precision and recall after each prediction, ranked by score (ties: non-matches first)."""
    scores = np.asarray(scores, np.float64)
    is_match = np.asarray(is_match, bool)
    if n_positives < 1:
        raise InputError("the ground truth has no positive pairs; micro-AP is undefined")
    order = np.lexsort((is_match, -scores))
    hits = np.cumsum(is_match[order])
    return PRCurve(scores[order], hits / np.arange(1, len(order) + 1), hits / n_positives)


def micro_average_precision(curve: PRCurve) -> float:
    """Sum of precision times recall increment over the ranked predictions."""
    gains = np.diff(np.concatenate([[0.0], curve.recall]))
    return float(np.sum(curve.precision * gains))


def recall_at_precision(curve: PRCurve, min_precision: float = 0.9) -> tuple[float | None, float | None]:
    """Highest recall reached with precision >= ``min_precision``, and the score threshold there; both None
    where no operating point reaches that precision (as the official ISC 2021 code says)."""
    ok = np.flatnonzero(curve.precision >= min_precision)
    if len(ok) == 0:
        return None, None
    best = ok[np.argmax(curve.recall[ok])]
    return float(curve.recall[best]), float(curve.scores[best])


def recall_at_one(predictions: pd.DataFrame, ground_truth: pd.DataFrame) -> float:
    """Share of copy queries whose highest-scored prediction is a true reference.

    As for micro-AP, a non-match tied with a match at the top score ranks first,
    so a tie never helps (and the result does not depend on row order).
    """
    ranks = true_reference_rank(predictions, ground_truth)
    return float(ranks.eq(1).mean()) if len(ranks) else 0.0


@dataclass(frozen=True)
class Metrics:
    micro_ap: float
    recall_at_p90: float | None  # None: precision 0.9 is never reached
    threshold_at_p90: float | None
    recall_at_1: float
    n_predictions: int
    n_positives: int
    n_copy_queries: int
    n_queries: int
    n_ground_truth_queries_missing: int = 0  # ground-truth queries not in the query set, left out of the above
    n_ground_truth_references_missing: int = 0  # ground-truth references not in the reference set, ditto

    def to_dict(self) -> dict:
        return asdict(self)


def pr_curve(predictions: pd.DataFrame, ground_truth: pd.DataFrame) -> PRCurve:
    """The micro precision-recall curve of ``query_id,reference_id,score`` predictions.

    A pair predicted twice counts once, with its highest score (whatever the row order).
    """
    predictions = unique_pairs(predictions)
    positives = ground_truth[ground_truth.reference_id != ""].drop_duplicates(["query_id", "reference_id"])
    return precision_recall(predictions.score.to_numpy(), isc.is_positive(predictions, ground_truth),
                            len(positives))


def unique_pairs(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.sort_values("score", ascending=False, kind="stable").drop_duplicates(
        ["query_id", "reference_id"])


def missing_queries(ground_truth: pd.DataFrame, query_ids: Collection[str]) -> list[str]:
    """The ground-truth queries that are not in ``query_ids`` (sorted)."""
    return sorted(set(ground_truth.query_id) - set(query_ids))


def missing_references(ground_truth: pd.DataFrame, reference_ids: Collection[str]) -> list[str]:
    """The references the ground truth names that are not in ``reference_ids`` (sorted)."""
    return sorted(set(ground_truth.reference_id[ground_truth.reference_id != ""]) - set(reference_ids))


def present_references(ground_truth: pd.DataFrame, reference_ids: Collection[str] | None) -> pd.DataFrame:
    """The ground truth without the pairs whose reference is not in ``reference_ids`` (all of it without
    ``reference_ids``): such a copy cannot be found in this collection, whatever the pipeline does. Its
    query stays, as a query that copies no reference of the set.
    """
    if reference_ids is None:
        return ground_truth
    named = ground_truth.reference_id != ""
    absent = named & ~ground_truth.reference_id.isin(set(reference_ids))
    if named.any() and absent[named].all():
        raise D2lvError(f"none of the {ground_truth.reference_id[named].nunique()} references the ground truth "
                        f"names is in the reference set (first: "
                        f"{missing_references(ground_truth, reference_ids)[0]!r}): is the ground truth for these "
                        "references?")
    return ground_truth.assign(reference_id=ground_truth.reference_id.mask(absent, "")).drop_duplicates()


def present_queries(ground_truth: pd.DataFrame, query_ids: Collection[str] | None) -> pd.DataFrame:
    """The ground truth of the queries in ``query_ids`` (all of it without ``query_ids``).

    A query that is not in the query set was never searched: scoring it as a miss would measure the
    ground truth's mismatch with the folder, not the pipeline. A query that is in the set but could not
    be used (an unreadable file) stays, and counts as missed.
    """
    if query_ids is None:
        return ground_truth
    present = ground_truth[ground_truth.query_id.isin(set(query_ids))]
    if len(present) == 0 and len(ground_truth) > 0:
        raise D2lvError(f"none of the {ground_truth.query_id.nunique()} ground-truth queries is in the query set "
                        f"(first: {missing_queries(ground_truth, query_ids)[0]!r}): is the ground truth for "
                        "these queries?")
    return present


def present_ground_truth(ground_truth: pd.DataFrame, query_ids: Collection[str] | None,
                         reference_ids: Collection[str] | None) -> pd.DataFrame:
    """The ground truth the metrics are computed over: :func:`present_queries`, then
    :func:`present_references`."""
    return present_references(present_queries(ground_truth, query_ids), reference_ids)


def evaluate(predictions: pd.DataFrame, ground_truth: pd.DataFrame, query_ids: Collection[str] | None = None,
             reference_ids: Collection[str] | None = None) -> Metrics:
    """ISC matching-track metrics for ``query_id,reference_id,score`` predictions.

    With ``query_ids`` (the query set), ground-truth queries outside it are left out of every metric
    (see :func:`present_queries`) and counted in ``n_ground_truth_queries_missing``; with
    ``reference_ids`` (the reference set), so are the ground-truth pairs whose reference is outside it
    (:func:`present_references`), counted in ``n_ground_truth_references_missing``.
    """
    n_missing = len(missing_queries(ground_truth, query_ids)) if query_ids is not None else 0
    n_missing_references = len(missing_references(ground_truth, reference_ids)) if reference_ids is not None else 0
    ground_truth = present_ground_truth(ground_truth, query_ids, reference_ids)
    predictions = unique_pairs(predictions)
    positives = ground_truth[ground_truth.reference_id != ""].drop_duplicates(["query_id", "reference_id"])
    curve = pr_curve(predictions, ground_truth)
    recall90, threshold90 = recall_at_precision(curve, 0.9)
    return Metrics(
        micro_ap=micro_average_precision(curve),
        recall_at_p90=recall90,
        threshold_at_p90=threshold90,
        recall_at_1=recall_at_one(predictions, ground_truth),
        n_predictions=len(predictions),
        n_positives=len(positives),
        n_copy_queries=positives.query_id.nunique(),
        n_queries=ground_truth.query_id.nunique(),
        n_ground_truth_queries_missing=n_missing,
        n_ground_truth_references_missing=n_missing_references,
    )


def family_recall(predictions: pd.DataFrame, ground_truth: pd.DataFrame, categories: pd.DataFrame) -> pd.Series:
    """recall@1 of the copy queries of each recipe family."""
    copies = categories[categories.kind == "copy"]
    out = {}
    for family, group in copies.groupby("recipe"):
        gt = ground_truth[ground_truth.query_id.isin(group.query_id)]
        out[family] = recall_at_one(predictions[predictions.query_id.isin(group.query_id)], gt)
    return pd.Series(out, dtype="float64")



def top_false_positives(predictions: pd.DataFrame, ground_truth: pd.DataFrame, categories: pd.DataFrame | None,
                        n: int = 10) -> pd.DataFrame:
    """The ``n`` best-scored pairs that are not copies, with what their query is.

    Columns: ``query_id, reference_id, score`` and, from ``categories.csv``, the query's ``kind``
    (``copy``: a copy of another reference; ``noncopy``; ``hard_negative``), its ``recipe``, and
    ``same_object``: whether the reference shows the hard negative's object.
    """
    pairs = unique_pairs(predictions)
    wrong = pairs[~isc.is_positive(pairs, ground_truth)].head(n).reset_index(drop=True)
    if categories is None:
        return wrong[["query_id", "reference_id", "score"]]
    info = categories.set_index("query_id").reindex(wrong.query_id)
    wrong["kind"] = info.kind.fillna("").to_numpy()
    wrong["recipe"] = info.recipe.fillna("").to_numpy()
    similar = info.get("similar_reference_id", pd.Series("", index=info.index)).fillna("")
    wrong["same_object"] = similar.to_numpy() == wrong.reference_id.to_numpy()
    return wrong[["query_id", "reference_id", "score", "kind", "recipe", "same_object"]]


def true_reference_rank(predictions: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.Series:
    """Per copy query, the rank of its best-ranked true reference among its predictions (NaN: none
    predicted), by the tie rule of :func:`recall_at_one`: a non-match tied with it ranks before it."""
    return _true_reference_rank(_ranked_pairs(predictions, ground_truth), ground_truth)


def _true_reference_rank(ranked: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.Series:
    """:func:`true_reference_rank` of pairs :func:`_ranked_pairs` has ranked."""
    positives = ground_truth[ground_truth.reference_id != ""]
    first_match = ranked[ranked.match].groupby("query_id").position.min()
    return (first_match + 1).reindex(pd.Index(positives.query_id.unique(), name="query_id")).astype("float64")


def _ranked_pairs(predictions: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """Each predicted pair once, with ``match`` and its 0-based ``position`` in its query's ranking
    (by descending score, a non-match before a match of equal score)."""
    pairs = unique_pairs(predictions)
    pairs = pairs.assign(match=isc.is_positive(pairs, ground_truth))
    pairs = pairs.sort_values(["query_id", "score", "match"], ascending=[True, False, True], kind="stable")
    return pairs.assign(position=pairs.groupby("query_id").cumcount())


def missed_copies(predictions: Mapping[str, pd.DataFrame], ground_truth: pd.DataFrame,
                  categories: pd.DataFrame | None) -> pd.DataFrame:
    """The copy queries the last system of ``predictions`` (system name -> predictions) misses at rank 1,
    and where each system ranks their true reference: which branch, if any, still finds them.

    Columns: ``query_id``, ``reference_id`` (the true reference; the first, for a query with several),
    ``recipe`` (from ``categories``), the last system's ``top_reference_id`` and ``top_score`` (empty
    and NaN where it predicts nothing), and per system a column named after it: the true reference's
    rank (NaN: not among that system's predictions).
    """
    ranked = {name: _ranked_pairs(frame, ground_truth) for name, frame in predictions.items()}
    ranks = pd.DataFrame({name: _true_reference_rank(pairs, ground_truth) for name, pairs in ranked.items()})
    last = list(ranked.values())[-1]
    missed = ranks[ranks.iloc[:, -1].ne(1)].sort_index()
    top = last[last.position == 0].set_index("query_id").reindex(missed.index)
    truth = ground_truth[ground_truth.reference_id != ""].drop_duplicates("query_id").set_index("query_id")
    out = pd.DataFrame({"reference_id": truth.reference_id.reindex(missed.index)}, index=missed.index)
    if categories is not None:
        out["recipe"] = categories.set_index("query_id").recipe.reindex(missed.index).fillna("")
    out["top_reference_id"] = top.reference_id.fillna("")
    out["top_score"] = top.score
    return out.join(missed).reset_index()


BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


def detector_recall(boxes: pd.DataFrame, categories: pd.DataFrame, min_iou: float = 0.5) -> pd.DataFrame:
    """How well the detector's kept boxes (:data:`d2lv.io.tables.BOXES`) find each family's copy region.

    Per recipe family of the bench's queries (``categories.csv``): ``placed``, the queries whose photo
    lies in a larger picture (a true box); ``box_recall``, the share of those whose first box (the
    most confident, the original method's one crop) overlaps the true one with IoU >= ``min_iou``;
    ``crop_recall``, the share for which any kept box does; ``full_frame``, the queries without a
    true box, and ``cropped_by_mistake``, how many of them the detector cropped all the same.
    """
    frame = categories.merge(boxes, on="query_id", how="inner")
    placed = (frame[list(BOX_COLUMNS)] != "").all(axis=1)
    truth = frame.loc[placed, list(BOX_COLUMNS)].astype(float).to_numpy()
    found = frame.loc[placed, ["x0", "y0", "x1", "y1"]].astype(float).fillna(0).to_numpy()
    frame["hit"] = False
    frame.loc[placed, "hit"] = frame.loc[placed, "cropped"].to_numpy() & (box_iou(truth, found) >= min_iou)
    frame["first_hit"] = frame.hit & frame["rank"].fillna(0).eq(1)
    frame["placed"] = placed
    per_query = frame.groupby("query_id").agg(recipe=("recipe", "first"), placed=("placed", "first"),
                                              hit=("hit", "any"), first_hit=("first_hit", "any"),
                                              cropped=("cropped", "any"))
    rows = []
    for family, group in per_query.groupby("recipe"):
        inside, full = group[group.placed], group[~group.placed]
        recall = lambda column: inside[column].mean() if len(inside) else np.nan  # noqa: E731
        rows.append((family, len(inside), recall("first_hit"), recall("hit"), len(full), int(full.cropped.sum())))
    return pd.DataFrame(rows, columns=["family", "placed", "box_recall", "crop_recall", "full_frame",
                                       "cropped_by_mistake"])
