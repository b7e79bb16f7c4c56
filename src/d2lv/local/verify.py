"""Local verification of candidate pairs: 2-NN ratio matching, mirrored and inverted passes, geometry.

The original method scores a pair by the number of ratio-test matches. We
keep that count and add geometric verification: matches that agree on one
homography (or affinity) are far stronger evidence of a copy than matches
that merely look alike, which is what separates copies from near duplicates.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from d2lv.io import tables
from d2lv.local.params import SiftParams, VerifyParams
from d2lv.local.sift import INVERSION_PERMUTATION, MIRROR_PERMUTATION, dequantize, extraction_scale, mirror_keypoints
from d2lv.local.store import FeatureStore, ImageFeatures

MIN_POINTS = {"homography": 4, "affine": 3, "none": 0}


@dataclass(frozen=True)
class PairScore:
    n_matches: int
    n_inliers: int
    flipped: bool
    inverted: bool


def two_nearest(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query vector's nearest reference vector, and the squared L2 distances to its two nearest.

    One matrix product and two row reductions: a full sort or ``argpartition`` of the distance
    matrix costs several times the product itself.
    """
    dist = query @ reference.T
    dist *= -2.0
    dist += (reference * reference).sum(1)
    rows = np.arange(len(query))
    nearest = dist.argmin(1)
    d1 = dist[rows, nearest]
    dist[rows, nearest] = np.inf
    d2 = dist.min(1)
    norms = (query * query).sum(1)
    return nearest, d1 + norms, d2 + norms


def ratio_matches(query: np.ndarray, reference: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (query, reference) of 2-NN matches passing Lowe's ratio test.

    Descriptors are uint8 RootSIFT (:func:`d2lv.local.sift.dequantize`) or already float32.
    """
    if len(query) == 0 or len(reference) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nearest, d1, d2 = two_nearest(as_float(query), as_float(reference))
    ok = np.maximum(d1, 0.0) < (ratio * ratio) * d2
    return np.flatnonzero(ok), nearest[ok]


def unique_positions(q_idx: np.ndarray, r_idx: np.ndarray, q_points: np.ndarray,
                     r_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop matches that repeat a keypoint position on either side.

    SIFT emits several keypoints at one location (one per dominant
    orientation); counted separately they inflate scores.
    """
    if len(q_idx) == 0:
        return q_idx, r_idx
    _, first_q = np.unique(_position_keys(q_points[q_idx]), return_index=True)
    keep = np.zeros(len(q_idx), bool)
    keep[first_q] = True
    _, first_r = np.unique(_position_keys(r_points[r_idx[keep]]), return_index=True)
    kept = np.flatnonzero(keep)[first_r]
    kept.sort()
    return q_idx[kept], r_idx[kept]


def _position_keys(points: np.ndarray) -> np.ndarray:
    """One int64 per keypoint for its position rounded to whole pixels (a 1-D key sorts far faster than rows)."""
    pos = np.rint(points[:, :2]).astype(np.int64)
    return (pos[:, 0] << 32) + pos[:, 1]


def inlier_mask(src: np.ndarray, dst: np.ndarray, geometry: str, threshold: float) -> np.ndarray:
    """Which matches agree on one transform from query to reference (MAGSAC++/RANSAC).

    Without geometry every match counts; a degenerate or missing model keeps none.
    """
    if geometry == "none":
        return np.ones(len(src), bool)
    none = np.zeros(len(src), bool)
    if len(src) < MIN_POINTS[geometry]:
        return none
    src, dst = src.astype(np.float32), dst.astype(np.float32)
    if geometry == "homography":
        model, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999)
    else:
        model, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                           maxIters=2000, confidence=0.999)
    if model is None or mask is None or not _plausible(model):
        return none
    return mask.ravel().astype(bool)


def _plausible(model: np.ndarray) -> bool:
    """Reject degenerate transforms (collapsing or exploding the image)."""
    det = float(np.linalg.det(model[:2, :2]))
    return 1e-3 < abs(det) < 1e3


@dataclass(frozen=True)
class PairMatches:
    """The ratio-test correspondences of a pair that survive de-duplication, and which are inliers.

    Points are ``[n, 2]`` x, y in each image's own pixels, as in the feature store (original
    pixels; see :func:`d2lv.local.sift.extract`). When the mirrored pass wins, the reference points are
    still those of the unmirrored reference, so they can be drawn on the reference as it is.
    """

    query_points: np.ndarray
    reference_points: np.ndarray
    inliers: np.ndarray  # bool [n]
    flipped: bool
    inverted: bool = False

    @property
    def n_matches(self) -> int:
        return len(self.inliers)

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def probed_ratio_matches(query: np.ndarray, reference: np.ndarray, params: VerifyParams) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """:func:`ratio_matches`, the query's rows sorted, but the full match only where a probe promises it.

    The probe is every ``local.verify.probe_stride``-th query keypoint, an unbiased sample of the image (the
    strongest keypoints are not: on a meme or a screenshot they lie on the caption or the frame). When it
    finds fewer than ``local.verify.probe_matches`` matches the pair is no copy in this orientation, and its
    matches are the probe's; otherwise the other rows are matched too, which gives exactly the full match.
    Most candidate pairs are not copies, so most pairs cost a quarter of a full match per pass.
    """
    stride = params.probe_stride
    if stride <= 1 or len(query) <= stride:
        return ratio_matches(query, reference, params.ratio)
    probe_rows = np.arange(0, len(query), stride)
    rest_rows = np.setdiff1d(np.arange(len(query)), probe_rows, assume_unique=True)
    q_idx, r_idx = ratio_matches(query[probe_rows], reference, params.ratio)
    if len(q_idx) < params.probe_matches:
        return probe_rows[q_idx], r_idx
    rest_q, rest_r = ratio_matches(query[rest_rows], reference, params.ratio)
    q_idx, r_idx = np.concatenate([probe_rows[q_idx], rest_rows[rest_q]]), np.concatenate([r_idx, rest_r])
    order = np.argsort(q_idx, kind="stable")
    return q_idx[order], r_idx[order]


def _match_orientation(query: ImageFeatures, descriptors: np.ndarray, reference: np.ndarray,
                       keypoints: np.ndarray, threshold: float,
                       params: VerifyParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matched (query, reference) keypoint indices and their inlier mask against one orientation.

    ``descriptors`` are the query's (float32, possibly mirrored), ``reference`` the reference's.
    """
    q_idx, r_idx = probed_ratio_matches(descriptors, reference, params)
    q_idx, r_idx = unique_positions(q_idx, r_idx, query.keypoints, keypoints)
    mask = inlier_mask(query.keypoints[q_idx, :2], keypoints[r_idx, :2], params.geometry, threshold)
    return q_idx, r_idx, mask


def match_pair(query: ImageFeatures, reference: ImageFeatures, params: VerifyParams,
               extraction: SiftParams = SiftParams()) -> PairMatches:
    """The correspondences of one pair; the best of the plain, mirrored and inverted passes wins (more
    inliers, then more matches). The inlier threshold is in pixels at the scale ``extraction`` (the settings
    the features were extracted with) gave the reference.

    The mirrored and inverted passes match permutations of the query's descriptors against the reference's
    (:data:`d2lv.local.sift.MIRROR_PERMUTATION`, :data:`d2lv.local.sift.INVERSION_PERMUTATION`): the
    distances equal those to the mirrored reference, whose mirrored keypoints the geometry is fitted to,
    or to the negative of the query, whose keypoints are the query's. Descriptors may be uint8 (as stored)
    or already dequantised float32 (as :func:`verify_pairs` caches a query's).
    """
    threshold = params.ransac_threshold / extraction_scale(reference.width, reference.height, extraction.short_side,
                                                           extraction.max_upscale)
    q, r = as_float(query.descriptors), as_float(reference.descriptors)
    passes = [(q, reference.keypoints, False, False)]
    if params.mirrored:
        passes.append((q[:, MIRROR_PERMUTATION], mirror_keypoints(reference.keypoints, reference.width), True, False))
    if params.inverted:
        passes.append((q[:, INVERSION_PERMUTATION], reference.keypoints, False, True))
    found = [(*_match_orientation(query, descriptors, r, keypoints, threshold, params), flipped, inverted)
             for descriptors, keypoints, flipped, inverted in passes]
    # the first pass with the most inliers, then the most matches
    q_idx, r_idx, mask, flipped, inverted = max(found, key=lambda f: (int(f[2].sum()), len(f[2])))
    # mirror_keypoints() keeps the keypoint order, so the indices address the unmirrored reference as well.
    return PairMatches(query.keypoints[q_idx, :2], reference.keypoints[r_idx, :2], mask, flipped, inverted)


def dequantised(features: ImageFeatures) -> ImageFeatures:
    """The features with float32 descriptors."""
    return dataclasses.replace(features, descriptors=as_float(features.descriptors))


def as_float(descriptors: np.ndarray) -> np.ndarray:
    """Stored uint8 RootSIFT dequantised; float32 descriptors as they are."""
    return dequantize(descriptors) if descriptors.dtype == np.uint8 else descriptors


def verify_pair(query: ImageFeatures, reference: ImageFeatures, params: VerifyParams,
                extraction: SiftParams = SiftParams()) -> PairScore:
    """Score one (query, reference) pair; the best of the plain, mirrored and inverted passes wins."""
    matches = match_pair(query, reference, params, extraction)
    return PairScore(matches.n_matches, matches.n_inliers, matches.flipped, matches.inverted)


def pair_score(score: PairScore, geometry: str) -> float:
    """The scalar a pair is ranked by: inliers, or plain matches without geometry."""
    return float(score.n_matches if geometry == "none" else score.n_inliers)


#: Reference features :func:`verify_pairs` keeps in memory (about 90 KB each at 600 keypoints): a
#: reference is a candidate of many queries, and reading it from its shard file costs a third of a pair.
REFERENCE_CACHE = 1024


def verify_pairs(pairs: pd.DataFrame, queries: FeatureStore, references: FeatureStore,
                 params: VerifyParams, branch: str, progress: bool = True) -> pd.DataFrame:
    """Verify every pair whose query and reference are in the stores, query by query, at the settings the
    references were extracted with."""
    known = pairs[pairs.query_id.isin(queries.ids) & pairs.reference_id.isin(references.ids)]
    if known.empty:
        return tables.empty_frame(tables.SCORES)
    known = known.sort_values(["query_id", "reference_id"], kind="stable")
    # a query is verified against all its candidates in turn: dequantise its descriptors once
    query_features = functools.lru_cache(maxsize=1)(lambda image_id: dequantised(queries.get(image_id)))
    reference_features = functools.lru_cache(maxsize=REFERENCE_CACHE)(references.get)
    extraction = references.extraction()
    rows = []
    for q_id, r_id in tqdm(known[["query_id", "reference_id"]].itertuples(index=False),
                           total=len(known), desc="verify", unit="pair", disable=not progress):
        query, reference = query_features(q_id), reference_features(r_id)
        score = verify_pair(query, reference, params, extraction)
        rows.append((q_id, r_id, branch, score.n_matches, score.n_inliers, score.flipped, score.inverted,
                     pair_score(score, params.geometry), len(query.keypoints), len(reference.keypoints)))
    return pd.DataFrame(rows, columns=tables.SCORES.names)
