"""The final answer: one score per (query, reference) pair, in ISC format and as Parquet.

Every branch proposes candidates with its own recall features (local and
crop: votes and mean descriptor distance; global: cosine similarity; pdq:
Hamming distance and hash quality); every candidate is verified by local
matching in each query view. A pair's row
gathers all of it, one column per branch and feature, so the merge
(:mod:`d2lv.merge.scoring`) sees everything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

from d2lv.io import views
from d2lv.io.isc import KEYS
from d2lv.merge import scoring
from d2lv.merge.params import VERIFICATION_BRANCHES

RECALL_FEATURES = {"local": ["votes", "mean_distance"], "crop": ["votes", "mean_distance"], "global": ["similarity"],
                   "pdq": ["hamming", "quality"]}
VERIFY_FEATURES = ["n_matches", "n_inliers", "flipped", "inverted", "score", "query_keypoints", "reference_keypoints"]


def gather_branches(local: pd.DataFrame, crop: pd.DataFrame | None, global_: pd.DataFrame | None,
                    pdq: pd.DataFrame | None, scores: pd.DataFrame,
                    boxes: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, set[str]]:
    """What :func:`pair_features` takes, from the branches' tables (None: a branch that does not run): each
    branch's candidates keyed by query, the verification scores of every view, the ids of cropped queries.

    Of a query's crops, the one with the most votes (crop candidates) or inliers (scores, per view) speaks
    for it; on a tie, the earlier row (the views' scores come queries first, then crops in rank order). The
    scores keep that crop's id in ``view_id``.
    """
    candidates = {"local": local}
    if crop is not None:
        candidates["crop"] = views.best_per_query(crop, ["reference_id"], by=["votes", "mean_distance"],
                                                  ascending=[False, True])
    if global_ is not None:
        candidates["global"] = global_
    if pdq is not None:
        candidates["pdq"] = pdq
    best_scores = views.best_per_query(scores.assign(view_id=scores.query_id), ["reference_id", "branch"],
                                       by=["n_inliers", "n_matches"], ascending=[False, False])
    return candidates, best_scores, set(boxes.query_id[boxes.cropped])


def pair_features(candidates: Mapping[str, pd.DataFrame], scores: pd.DataFrame,
                  cropped: Collection[str] = ()) -> pd.DataFrame:
    """One row per verified candidate pair of any branch.

    Columns: ``<branch>_<feature>`` recall features (null where the branch did not
    propose the pair), ``verify_<view>_<feature>`` per query view (``local``: the
    query; ``local_crop``: its detected copy region), and ``has_crop``.
    """
    frames = []
    for branch, frame in candidates.items():
        features = RECALL_FEATURES[branch]
        frames.append(frame[KEYS + features].rename(columns={f: f"{branch}_{f}" for f in features})
                      .set_index(KEYS))
    pairs = pd.concat(frames, axis=1, join="outer") if frames else pd.DataFrame(index=pd.MultiIndex.from_tuples(
        [], names=KEYS))
    verified = scores.pivot_table(index=KEYS, columns="branch", values=VERIFY_FEATURES, aggfunc="first")
    verified.columns = [f"verify_{view}_{feature}" for feature, view in verified.columns]
    pairs = pairs.join(verified, how="inner") if len(pairs) else pairs
    pairs = pairs.reset_index()
    for column in [f"{b}_{f}" for b, fs in RECALL_FEATURES.items() for f in fs] + [
            f"verify_{view}_{f}" for view in VERIFICATION_BRANCHES for f in VERIFY_FEATURES]:
        if column not in pairs:  # a branch or view with no pair at all (e.g. no query was cropped)
            pairs[column] = pd.Series(dtype="boolean" if column.endswith(("_flipped", "_inverted")) else "float64")
    pairs["has_crop"] = pairs.query_id.isin(set(cropped))
    return pairs


def assemble_matches(candidates: Mapping[str, pd.DataFrame], scores: pd.DataFrame, mode: str = "sum",
                     model: scoring.CalibratedMerge | None = None, cropped: Collection[str] = ()) -> pd.DataFrame:
    """Score every verified candidate pair, best first; ``rank`` numbers each query's pairs from 1.

    ``score`` is the merge ``mode``'s; ``score_sum`` (the original method's) is kept beside it.
    """
    pairs = pair_features(candidates, scores, cropped)
    pairs["score_sum"] = scoring.sum_score(pairs)
    pairs["score"] = scoring.merge_scores(pairs, mode, model)
    pairs = pairs.sort_values(["score", "query_id", "reference_id"], ascending=[False, True, True], kind="stable")
    pairs["rank"] = pairs.groupby("query_id", sort=False).cumcount() + 1
    return pairs.reset_index(drop=True)
