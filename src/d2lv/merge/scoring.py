"""Merging the branches into one score per (query, reference) pair.

Two modes:

* ``sum``, the original method's: the verified match counts of every query
  view added up (the global similarity, below 1, only breaks ties).
* ``calibrated``: a logistic regression over every branch's features, fitted
  on labelled pairs that the pipeline made itself (:func:`d2lv.synth.calibration.
  make_calibration` edits the user's own references; each edit's source is
  its positive, every other candidate a negative). Its output is a
  probability, so scores of different queries are comparable, which micro-AP
  (one ranking of all pairs) needs.

The fitted model is a small JSON file: the feature names, their
standardisation and the coefficients, readable and diffable.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from d2lv.errors import InputError
from d2lv.io import atomic
from d2lv.merge.params import MODES, VERIFICATION_BRANCHES
from d2lv.pdq.params import MATCH_DISTANCE, RELIABLE_QUALITY, UNRELATED_DISTANCE

MODEL_VERSION = 4
#: The best view's inlier count also enters as indicators of reaching each octave: a linear model of log
#: counts alone cannot say that many inliers make a copy almost whatever the global similarity says (on
#: the 1k bench, pastes with 20-50 inliers but no global candidate scored below repeated-texture
#: near duplicates with 10-17).
INLIER_OCTAVES = (4, 8, 16, 32, 64)


def _column(pairs: pd.DataFrame, name: str, fill: float = 0.0) -> np.ndarray:
    """A numeric column as float64, ``fill`` where the pair lacks it (or the column is absent)."""
    if name not in pairs:
        return np.full(len(pairs), fill)
    return pd.to_numeric(pairs[name], errors="coerce").fillna(fill).to_numpy(np.float64)


def _present(pairs: pd.DataFrame, name: str) -> np.ndarray:
    if name not in pairs:
        return np.zeros(len(pairs))
    return pairs[name].notna().to_numpy(np.float64)


def sum_score(pairs: pd.DataFrame) -> np.ndarray:
    """The original method's merge: the sum of verified counts over query views.

    The count is each view's ``score`` (inliers, or plain matches when verification
    runs without geometry); the global similarity, below 1, only breaks ties.
    """
    score = sum(_column(pairs, f"verify_{view}_score") for view in VERIFICATION_BRANCHES)
    return score + 0.999 * np.clip(_column(pairs, "global_similarity"), 0.0, None)


def design_matrix(pairs: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Feature names and the ``(n_pairs, n_features)`` matrix the calibrated merge uses.

    Counts enter as ``log1p`` (evidence grows slower than counts), the best view's inliers also as
    :data:`INLIER_OCTAVES` indicators; a branch that did not propose the pair contributes zeros plus a
    0/1 "proposed" indicator. Each image's keypoint count says how much local evidence to expect.
    """
    inliers = {v: _column(pairs, f"verify_{v}_n_inliers") for v in VERIFICATION_BRANCHES}
    matches = {v: _column(pairs, f"verify_{v}_n_matches") for v in VERIFICATION_BRANCHES}
    best_inliers = np.maximum(inliers["local"], inliers["local_crop"])
    best_matches = np.maximum(matches["local"], matches["local_crop"])
    features = {
        "log_inliers_local": np.log1p(inliers["local"]),
        "log_inliers_crop": np.log1p(inliers["local_crop"]),
        "log_inliers_best": np.log1p(best_inliers),
        "log_matches_local": np.log1p(matches["local"]),
        "log_matches_crop": np.log1p(matches["local_crop"]),
        "inlier_fraction_best": best_inliers / np.maximum(best_matches, 1.0),
        "log_votes_local": np.log1p(_column(pairs, "local_votes")),
        "log_votes_crop": np.log1p(_column(pairs, "crop_votes")),
        "proposed_local": _present(pairs, "local_votes"),
        "proposed_crop": _present(pairs, "crop_votes"),
        "proposed_global": _present(pairs, "global_similarity"),
        "global_similarity": _column(pairs, "global_similarity"),
        "has_crop": _column(pairs, "has_crop"),
        **{f"inliers_best_ge_{k}": (best_inliers >= k).astype(np.float64) for k in INLIER_OCTAVES},
        **_local_evidence_features(pairs),
        **_hash_features(pairs),
    }
    features.update(_margin_features(pairs, features))
    return list(features), np.column_stack(list(features.values())) if len(pairs) else np.zeros((0, len(features)))


def _local_evidence_features(pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """How much local evidence a pair could have: the fewer keypoints either image has (a gradient, flat
    colour, paper), the less a missing inlier says against a copy."""
    return {
        "log_keypoints_query": np.log1p(_column(pairs, "verify_local_query_keypoints")),
        "log_keypoints_reference": np.log1p(_column(pairs, "verify_local_reference_keypoints")),
    }


def _hash_features(pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The hash branch's evidence, weighed by how far the hashes can be trusted
    (:data:`d2lv.pdq.params.RELIABLE_QUALITY`: on the hard bench, blank paper tiles of quality 0-1 matched
    unrelated flat queries at distance 0): how much closer than unrelated images they are (0 where the
    branch did not propose the pair), a ThreatExchange match, and the hashes' quality."""
    proposed, quality = _present(pairs, "pdq_hamming"), _column(pairs, "pdq_quality")
    trust = np.clip(quality / RELIABLE_QUALITY, 0.0, 1.0)
    hamming = _column(pairs, "pdq_hamming", fill=UNRELATED_DISTANCE)
    return {
        "proposed_pdq": proposed,
        "pdq_closeness": trust * _hash_closeness(pairs),
        "pdq_match": trust * (hamming <= MATCH_DISTANCE),
        "pdq_quality": proposed * quality / 100.0,
    }


def _hash_closeness(pairs: pd.DataFrame) -> np.ndarray:
    """How much closer than unrelated images the pair's hashes are, 0..1 (0 where the branch did not propose it)."""
    hamming = _column(pairs, "pdq_hamming", fill=UNRELATED_DISTANCE)
    return np.clip(1.0 - hamming / UNRELATED_DISTANCE, 0.0, 1.0)


#: Features whose margin over the query's other candidates also enters the merge (:func:`_margin_features`);
#: ``pdq_nearness`` is the hash branch's closeness unweighted by quality.
MARGIN_FEATURES = ("global_similarity", "log_inliers_best", "pdq_closeness", "pdq_nearness")


def _margin_features(pairs: pd.DataFrame, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """How far each of :data:`MARGIN_FEATURES` stands above the best of the same query's other candidates.

    A copy stands out among its query's candidates; a query that looks like many references (a flat or
    smooth picture, a common texture) has several candidates of the same similarity, and none is its copy.
    On the hard benchmark, flat tiles with no keypoint and a hash of quality 0 were the top false positives
    on global similarity alone. Among one query's candidates even unreliable hashes (a smooth picture's) say
    which reference is nearest, so the hash's margin is also taken unweighted by quality.
    """
    queries = pairs["query_id"].to_numpy() if "query_id" in pairs else np.arange(len(pairs))  # no id: each alone
    values = {**features, "pdq_nearness": _hash_closeness(pairs)}
    return {f"{name}_margin": _margin_over_others(values[name], queries) for name in MARGIN_FEATURES}


def _margin_over_others(values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` minus the largest value among the other rows of the same query (minus 0 where it has none)."""
    frame = pd.DataFrame({"query": queries, "value": values})
    order = frame.sort_values(["query", "value"], ascending=[True, False], kind="stable")
    first = order.groupby("query", sort=False).cumcount().to_numpy() == 0
    best = order.groupby("query", sort=False)["value"].transform("max").to_numpy()
    runner_up = order["value"].where(~first).groupby(order["query"], sort=False).transform("max").fillna(0.0).to_numpy()
    margin = np.empty(len(frame))
    margin[order.index.to_numpy()] = order["value"].to_numpy() - np.where(first, runner_up, best)
    return margin


@dataclass(frozen=True)
class CalibratedMerge:
    """A fitted logistic regression over :func:`design_matrix` features."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    n_positive: int
    n_negative: int
    version: int = MODEL_VERSION

    def logit(self, pairs: pd.DataFrame) -> np.ndarray:
        """The linear score of every pair, summed row by row (not a matrix-vector product, whose BLAS kernel
        and so last bits depend on how many pairs are scored together): a pair scored alone gets its batch score.
        """
        names, x = design_matrix(pairs)
        if names != self.features:
            raise InputError(
                f"the merge model was fitted on features {self.features}, this d2lv computes {names}; "
                "refit it (delete the model file and rerun)"
            )
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return (z * np.asarray(self.coef)).sum(axis=1) + self.intercept

    def probability(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(copy | features), under the calibration set's share of copies."""
        return 1.0 / (1.0 + np.exp(-self.logit(pairs)))


def fit_calibrated(pairs: pd.DataFrame, labels: np.ndarray, regularisation: float = 1.0) -> CalibratedMerge:
    """Fit the calibrated merge on labelled candidate pairs.

    Raises:
        ValueError: the pairs hold no positive or no negative (the calibration set
            recalled none of its sources, or nothing else).
    """
    from sklearn.linear_model import LogisticRegression

    n_positive, n_negative = int(labels.sum()), int((~labels).sum())
    if n_positive < 2 or n_negative < 2:
        raise InputError(
            f"cannot fit the calibrated merge on {n_positive} positive and {n_negative} negative pairs; "
            "raise merge.calibration_queries, or use merge.mode: sum"
        )
    names, x = design_matrix(pairs)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=regularisation, max_iter=1000)
    model.fit((x - mean) / scale, labels)
    return CalibratedMerge(names, mean.tolist(), scale.tolist(), model.coef_[0].tolist(),
                           float(model.intercept_[0]), n_positive, n_negative)


def save_model(model: CalibratedMerge, path: str | os.PathLike, **extra: object) -> None:
    """Write ``model`` as JSON; ``extra`` keys (e.g. calibration metrics) are stored alongside."""
    with atomic.replacing(path) as partial, open(partial, "w") as f:
        json.dump({**asdict(model), **extra}, f, indent=2)
        f.write("\n")


def load_model(path: str | os.PathLike) -> CalibratedMerge:
    with open(path) as f:
        data = json.load(f)
    if data.get("version") != MODEL_VERSION:
        raise InputError(f"{path}: merge model version {data.get('version')}, expected {MODEL_VERSION}; refit it")
    fields = CalibratedMerge.__dataclass_fields__
    return CalibratedMerge(**{k: v for k, v in data.items() if k in fields})


def merge_scores(pairs: pd.DataFrame, mode: str, model: CalibratedMerge | None = None) -> np.ndarray:
    """The final score of every pair under ``mode``."""
    if mode == "sum":
        return sum_score(pairs)
    if mode == "calibrated":
        if model is None:
            raise InputError("merge.mode calibrated needs a fitted model (d2lv fit-merge)")
        return model.probability(pairs)
    raise InputError(f"unknown merge mode {mode!r}; expected one of {MODES}")
