"""The final answer: one score per (query, reference) pair, in ISC format and as Parquet."""

from __future__ import annotations

import os

import pandas as pd

ISC_COLUMNS = ["query_id", "reference_id", "score"]
BRANCH_FEATURES = ["votes", "n_matches", "n_inliers", "flipped", "score"]


def assemble_matches(candidates: pd.DataFrame, scores: pd.DataFrame, max_results_per_query: int) -> pd.DataFrame:
    """Join verified scores onto the selected candidates; one row per pair.

    Each branch contributes columns ``<branch>_<feature>``. The pair's score
    is the sum of the branch scores (the original method's merge).
    """
    verified = candidates.merge(scores, on=["query_id", "reference_id", "branch"], how="inner")
    wide = verified.pivot_table(index=["query_id", "reference_id"], columns="branch",
                                values=BRANCH_FEATURES, aggfunc="first")
    wide.columns = [f"{branch}_{feature}" for feature, branch in wide.columns]
    wide = wide.reset_index()
    score_columns = [c for c in wide.columns if c.endswith("_score")]
    wide["score"] = wide[score_columns].fillna(0.0).sum(axis=1).astype("float64") if score_columns else 0.0
    wide = wide.sort_values(["score", "query_id", "reference_id"], ascending=[False, True, True], kind="stable")
    return wide.groupby("query_id", sort=False).head(max_results_per_query).reset_index(drop=True)


def write_isc_csv(matches: pd.DataFrame, path: str | os.PathLike) -> None:
    """``query_id,reference_id,score`` with a header, best first."""
    matches[ISC_COLUMNS].to_csv(path, index=False, float_format="%.6g")


def read_isc_csv(path: str | os.PathLike) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"query_id": str, "reference_id": str, "score": float})
    missing = set(ISC_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not an ISC matching file; missing columns {sorted(missing)}")
    return frame
