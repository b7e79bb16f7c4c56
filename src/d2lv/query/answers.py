"""An answer as JSON: each match with the evidence of every branch, for people and for HMA-like services."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from d2lv.io.isc import ISC_COLUMNS
from d2lv.io.views import crop_id
from d2lv.merge.features import RECALL_FEATURES, VERIFY_FEATURES
from d2lv.merge.params import VERIFICATION_BRANCHES
from d2lv.query.matcher import Answer


def to_json(answer: Answer, keep: int | None) -> dict[str, Any]:
    """The query's boxes and its ``keep`` best matches (every verified one with None), best first."""
    pairs = answer.pairs if keep is None else answer.top(keep)
    return {
        "query_id": answer.query_id,
        "boxes": [{"crop_id": crop_id(answer.query_id, rank), "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                   "confidence": round(confidence, 4)}
                  for rank, ((x0, y0, x1, y1), confidence) in enumerate(answer.boxes, start=1)],
        "matches": [match_json(row, answer.crop_of) for row in pairs.to_dict("records")],
    }


def match_json(row: dict[str, Any], crop_of: dict[str, str]) -> dict[str, Any]:
    """One pair: its score and rank, each recall branch's features (where it proposed the pair) and each view's
    verification (where the view exists)."""
    recall = {branch: {feature: _value(row[f"{branch}_{feature}"]) for feature in features}
              for branch, features in RECALL_FEATURES.items() if _value(row[f"{branch}_{features[0]}"]) is not None}
    verified = {}
    for view in VERIFICATION_BRANCHES:
        if _value(row[f"verify_{view}_n_inliers"]) is not None:
            verified[view] = {feature: _value(row[f"verify_{view}_{feature}"]) for feature in VERIFY_FEATURES}
    if "local_crop" in verified and row["reference_id"] in crop_of:
        verified["local_crop"]["crop_id"] = crop_of[row["reference_id"]]
    return {"reference_id": row["reference_id"], "score": float(row["score"]), "rank": int(row["rank"]),
            "score_sum": float(row["score_sum"]), "recall": recall, "verification": verified}


def empty_matches() -> pd.DataFrame:
    return pd.DataFrame(columns=ISC_COLUMNS)


def _value(value: Any) -> Any:
    """A JSON value: None for a missing one, plain Python numbers and booleans."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value
