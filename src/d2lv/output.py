"""The final answer: one score per (query, reference) pair, in ISC format and as Parquet.

Every branch proposes candidates with its own recall features (local: votes
and mean descriptor distance; global: cosine similarity); every candidate is
verified by local matching. A pair's row gathers all of it, one column per
branch and feature, so the merge and any later calibration see everything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

ISC_COLUMNS = ["query_id", "reference_id", "score"]
KEYS = ["query_id", "reference_id"]
RECALL_FEATURES = {"local": ["votes", "mean_distance"], "global": ["similarity"]}
VERIFY_FEATURES = ["n_matches", "n_inliers", "flipped"]


def pair_features(candidates: Mapping[str, pd.DataFrame], scores: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate pair of any branch: ``<branch>_<feature>`` recall and verification columns."""
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
    return pairs.reset_index()


def sum_score(pairs: pd.DataFrame) -> pd.Series:
    """The original method's merge: the sum of verified match counts over query views.

    The global similarity (below 1) only breaks ties between equal counts.
    """
    inliers = [c for c in pairs.columns if c.startswith("verify_") and c.endswith("_n_inliers")]
    score = pairs[inliers].fillna(0).sum(axis=1).astype("float64")
    if "global_similarity" in pairs:
        score += pairs["global_similarity"].fillna(0.0).clip(lower=0.0) * 0.999
    return score


def assemble_matches(candidates: Mapping[str, pd.DataFrame], scores: pd.DataFrame,
                     max_results_per_query: int) -> pd.DataFrame:
    """Score every verified candidate pair, best first, at most ``max_results_per_query`` per query."""
    pairs = pair_features(candidates, scores)
    pairs["score"] = sum_score(pairs) if len(pairs) else pd.Series(dtype="float64")
    pairs = pairs.sort_values(["score", "query_id", "reference_id"], ascending=[False, True, True], kind="stable")
    return pairs.groupby("query_id", sort=False).head(max_results_per_query).reset_index(drop=True)


def write_isc_csv(matches: pd.DataFrame, path: str | os.PathLike) -> None:
    """``query_id,reference_id,score`` with a header, best first."""
    matches[ISC_COLUMNS].to_csv(path, index=False, float_format="%.6g")


def read_isc_csv(path: str | os.PathLike) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"query_id": str, "reference_id": str, "score": float})
    missing = set(ISC_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not an ISC matching file; missing columns {sorted(missing)}")
    return frame
