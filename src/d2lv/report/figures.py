"""Figures for Snakemake's HTML report (``snakemake --report``).

Everything a reader needs to judge a run at a glance: the metrics, the
precision-recall curve, recall per recipe family, and matched pairs drawn side
by side with the correspondences that verification found. The pairs are the
best-scored ones and those nearest the operating point (the score threshold at
precision 0.9), where the interesting mistakes are.

Correspondences are recomputed from the images with the pipeline's own SIFT and
verification code (:func:`d2lv.local.verify.match_pair`), for the query view that
produced more inliers: the whole query (``local``) or the copy region the
detector cropped from it (``local_crop``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from d2lv.evaluation import metrics
from d2lv.io import atomic, images, isc, manifest, tables
from d2lv.local import verify
from d2lv.local.params import SiftParams, VerifyParams
from d2lv.local.store import image_features
from d2lv.merge.params import VERIFICATION_BRANCHES
from d2lv.report import plots

PANEL_HEIGHT = 360  # both images of a pair are scaled to this height
MAX_PANEL_WIDTH = 4 * PANEL_HEIGHT  # ... unless that makes one wider than this
GAP = 8  # white pixels between the two images
MIN_WIDTH = 720  # narrower pairs are padded on the right, so that the caption fits
CAPTION_HEIGHT = 66  # the text strip under the images
BOX_COLOUR = (255, 0, 255)  # RGB: the detected copy region on the query
INLIER_COLOUR = (0, 220, 0)
OUTLIER_COLOUR = (255, 60, 60)
MAX_LINES = 120  # more inlier lines than this hide the images; an even sample is drawn
VERDICT_COLOURS = {True: (214, 245, 214), False: (250, 214, 214), None: (236, 236, 236)}  # caption backgrounds
PLACEHOLDER_SIZE = (640, 80)


@dataclass(frozen=True)
class Inputs:
    """What the report is drawn from; the ground truth and categories may be absent."""

    matches: pd.DataFrame  # matches.parquet: query_id, reference_id, score, verify_<view>_* columns
    query_paths: Mapping[str, str]
    reference_paths: Mapping[str, str]
    boxes: Mapping[str, list[tuple[int, int, int, int]]]  # query id -> x0, y0, x1, y1 of each of its crops
    ground_truth: pd.DataFrame | None = None
    categories: pd.DataFrame | None = None
    query_ids: frozenset[str] | None = None  # every query of the set, usable or not (None: unknown)
    reference_ids: frozenset[str] | None = None  # every reference of the set, usable or not (None: unknown)


@dataclass(frozen=True)
class Selected:
    """One pair to draw: which selection it belongs to, its rank there, and its matches row."""

    prefix: str
    rank: int
    row: pd.Series
    reason: str


def read_inputs(matches: str | os.PathLike, queries_manifests: Sequence[str | os.PathLike],
                references_manifests: Sequence[str | os.PathLike], boxes: Sequence[str | os.PathLike] = (),
                ground_truth: str | os.PathLike | None = None, categories: str | os.PathLike | None = None,
                max_results_per_query: int = 0) -> Inputs:
    """Read the pipeline's files into :class:`Inputs`.

    ``matches.parquet`` may hold every verified pair; with ``max_results_per_query``
    only each query's best pairs are kept, the rows of the ISC ``matches.csv``.
    """
    frame = pd.read_parquet(matches).astype({"query_id": str, "reference_id": str, "score": "float64"})
    if max_results_per_query > 0:
        frame = tables.rank_within_query(frame, [("score", False)], max_results_per_query)
    return Inputs(
        matches=frame,
        query_paths=_usable_paths(queries_manifests),
        reference_paths=_usable_paths(references_manifests),
        boxes=read_boxes(boxes),
        ground_truth=isc.read_ground_truth(ground_truth) if ground_truth else None,
        categories=isc.read_id_csv(categories) if categories else None,
        query_ids=frozenset(manifest.read_manifests(queries_manifests, usable_only=False).id),
        reference_ids=frozenset(manifest.read_manifests(references_manifests, usable_only=False).id),
    )


def _usable_paths(manifests: Sequence[str | os.PathLike]) -> dict[str, str]:
    frame = manifest.read_manifests(manifests)
    return dict(zip(frame.id, frame.path))


def read_boxes(paths: Sequence[str | os.PathLike]) -> dict[str, list[tuple[int, int, int, int]]]:
    """The copy regions the detector cropped from each query, first box first (non-empty, clipped at the
    image's top left)."""
    frame = tables.read_tables(paths, tables.BOXES)
    frame = frame[frame.cropped.eq(True)].dropna(subset=["x0", "y0", "x1", "y1"]).sort_values(["query_id", "rank"])
    boxes: dict[str, list[tuple[int, int, int, int]]] = {}
    for row in frame.itertuples(index=False):
        box = (max(0, int(row.x0)), max(0, int(row.y0)), int(row.x1), int(row.y1))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.setdefault(row.query_id, []).append(box)
    return boxes


def write_report_figures(inputs: Inputs, out: str | os.PathLike, sift_params: SiftParams,
                         params: VerifyParams, top: int = 8, near: int = 8, progress: bool = True) -> None:
    """Write ``metrics.csv``, ``pr_curve.png``, ``recall_per_family.png`` and ``pairs/*.jpg`` into ``out``.

    Figures that need the ground truth (or the categories) are replaced by a
    placeholder saying so, so that the set of files never changes. As for ``d2lv evaluate``, ground-truth
    queries that are not in the query set, and pairs whose reference is not in the reference set, are left out
    of the metrics and curves.
    """
    out = Path(out)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    predictions = metrics.unique_pairs(inputs.matches)
    result, truth = None, None
    if inputs.ground_truth is not None:
        result = metrics.evaluate(predictions[["query_id", "reference_id", "score"]], inputs.ground_truth,
                                  inputs.query_ids, inputs.reference_ids)
        truth = metrics.present_ground_truth(inputs.ground_truth, inputs.query_ids, inputs.reference_ids)
    write_metrics(inputs, predictions, result, out / "metrics.csv")
    write_pr_curve(predictions, truth, out / "pr_curve.png")
    write_family_recall(predictions, truth, inputs.categories, out / "recall_per_family.png")
    selected = top_pairs(predictions, top) + near_pairs(predictions, near, result)
    for pick in tqdm(selected, desc="report pairs", unit="pair", disable=not progress):
        draw_selected(pick, inputs, sift_params, params, out / "pairs")


def write_metrics(inputs: Inputs, predictions: pd.DataFrame, result: metrics.Metrics | None,
                  path: Path) -> None:
    """One row: the ISC metrics with ground truth, else counts of what was matched."""
    if result is not None:
        row = result.to_dict()
    else:
        row = {"n_queries": len(inputs.query_paths), "n_references": len(inputs.reference_paths),
               "n_matched_pairs": len(predictions), "n_matched_queries": predictions.query_id.nunique()}
    with atomic.replacing(path) as partial:
        pd.DataFrame([row]).to_csv(partial, index=False)


def write_pr_curve(predictions: pd.DataFrame, ground_truth: pd.DataFrame | None, path: Path) -> None:
    if ground_truth is None:
        write_placeholder(path, "No precision-recall curve: the run has no ground truth.")
        return
    plots.plot_pr_curves({"d2lv": metrics.pr_curve(predictions, ground_truth)}, path)


def write_family_recall(predictions: pd.DataFrame, ground_truth: pd.DataFrame | None,
                        categories: pd.DataFrame | None, path: Path) -> None:
    if ground_truth is None or categories is None:
        missing = "ground truth" if ground_truth is None else "categories (recipe of each query)"
        write_placeholder(path, f"No recall per recipe family: the run has no {missing}.")
        return
    recalls = metrics.family_recall(predictions, ground_truth, categories)
    if recalls.empty:
        write_placeholder(path, "No recall per recipe family: the categories list no copy queries.")
        return
    plots.plot_family_recall(pd.DataFrame({"d2lv": recalls}), path)


def write_placeholder(path: Path, message: str) -> None:
    """A small PNG that says why the figure is missing (the report's set of files stays fixed)."""
    canvas = Image.new("RGB", PLACEHOLDER_SIZE, (245, 245, 245))
    ImageDraw.Draw(canvas).text((16, 30), message, fill=(60, 60, 60), font=_font())
    canvas.save(path)


# --- which pairs ------------------------------------------------------------------


def top_pairs(predictions: pd.DataFrame, n: int) -> list[Selected]:
    """The ``n`` best-scored pairs."""
    best = _ranked(predictions).head(n)
    return [Selected("top", i, row, f"#{i} by score") for i, (_, row) in enumerate(best.iterrows(), 1)]


def near_pairs(predictions: pd.DataFrame, n: int, result: metrics.Metrics | None) -> list[Selected]:
    """The ``n`` pairs scored nearest the operating point, best first.

    With ground truth the operating point is the score threshold at precision
    0.9, among all pairs. Without it (or when precision never reaches 0.9) it is
    the median score of the queries' best matches, among those best matches.
    """
    if result is not None and result.threshold_at_p90 is not None:
        prefix, anchor, pool = "p90", result.threshold_at_p90, predictions
        reason = f"near the P90 threshold {anchor:.4g}"
    else:
        pool = _ranked(predictions).drop_duplicates("query_id")
        prefix, anchor = "median", float(pool.score.median()) if len(pool) else 0.0
        reason = f"near the median best score {anchor:.4g}"
    nearest = pool.assign(_distance=(pool.score - anchor).abs()).sort_values(
        ["_distance", "score", "query_id", "reference_id"], ascending=[True, False, True, True], kind="stable")
    chosen = _ranked(nearest.head(n).drop(columns="_distance"))
    return [Selected(prefix, i, row, reason) for i, (_, row) in enumerate(chosen.iterrows(), 1)]


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["score", "query_id", "reference_id"], ascending=[False, True, True], kind="stable")


def pair_file_name(prefix: str, rank: int, query_id: str, reference_id: str) -> str:
    """``<prefix>_<rank>_<query>_<reference>.jpg`` with ids reduced to safe characters."""
    return f"{prefix}_{rank:02d}_{_safe(query_id)}_{_safe(reference_id)}.jpg"


def _safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")[:limit] or "x"


# --- one pair ---------------------------------------------------------------------


def draw_selected(pick: Selected, inputs: Inputs, sift_params: SiftParams, params: VerifyParams,
                  folder: Path) -> None:
    """Draw one selected pair into ``folder`` (skipped, with a message, if an image is not usable)."""
    query_id, reference_id = pick.row.query_id, pick.row.reference_id
    try:
        query_rgb = _load(inputs.query_paths, query_id)
        reference_rgb = _load(inputs.reference_paths, reference_id)
    except images.ImageError as err:
        print(f"report: pair {query_id} -> {reference_id} not drawn: {err}", file=sys.stderr)
        return
    picture = pair_picture(pick, query_rgb, reference_rgb, inputs.boxes.get(query_id, []), sift_params, params,
                           inputs.ground_truth)
    Image.fromarray(picture).save(folder / pair_file_name(pick.prefix, pick.rank, query_id, reference_id),
                                  quality=85, subsampling=0)  # 4:4:4 keeps thin coloured lines crisp


def pair_picture(pick: Selected, query_rgb: np.ndarray, reference_rgb: np.ndarray,
                 crops: Sequence[tuple[int, int, int, int]], sift_params: SiftParams, params: VerifyParams,
                 ground_truth: pd.DataFrame | None = None) -> np.ndarray:
    """The pair drawn: its correspondences recomputed in the view with more inliers (of the query's ``crops``,
    the one with the most), the box, and a caption of its evidence and verdict."""
    query_id, reference_id = pick.row.query_id, pick.row.reference_id
    view = view_to_draw(pick.row, bool(crops))
    if view == "local_crop":  # the crop that spoke for the query: the one with the most inliers
        found, box = max(((correspondences(query_rgb, reference_rgb, crop, sift_params, params), crop)
                          for crop in crops), key=lambda drawn: drawn[0].n_inliers)
    else:
        found, box = correspondences(query_rgb, reference_rgb, None, sift_params, params), (crops[0] if crops else None)
    verdict = is_correct(ground_truth, query_id, reference_id)
    lines = caption_lines(pick, view, found, verdict, ground_truth)
    return render_pair(query_rgb, reference_rgb, found, box, lines, verdict)


def _load(paths: Mapping[str, str], image_id: str) -> np.ndarray:
    if image_id not in paths:
        raise images.ImageError(f"{image_id} is not a usable image of the manifests")
    return images.load_image(paths[image_id])


def view_to_draw(row: pd.Series, has_box: bool) -> str:
    """The query view with more inliers (the whole query on a tie, or when there is no box to crop)."""
    inliers = {view: _number(row.get(f"verify_{view}_n_inliers")) for view in VERIFICATION_BRANCHES}
    if has_box and inliers["local_crop"] > inliers["local"]:
        return "local_crop"
    return "local"


def _number(value: object) -> float:
    return -1.0 if value is None or pd.isna(value) else float(value)


def correspondences(query_rgb: np.ndarray, reference_rgb: np.ndarray, crop: tuple[int, int, int, int] | None,
                    sift_params: SiftParams, params: VerifyParams) -> verify.PairMatches:
    """Recompute a pair's matches; with ``crop``, from that region of the query, in full-query pixels."""
    x0, y0 = (crop[0], crop[1]) if crop else (0, 0)
    query_gray = images.to_gray(query_rgb)
    if crop:
        query_gray = query_gray[crop[1]:crop[3], crop[0]:crop[2]]
    found = verify.match_pair(image_features("", query_gray, sift_params),
                              image_features("", images.to_gray(reference_rgb), sift_params),
                              params, sift_params)
    return replace(found, query_points=found.query_points + np.array([x0, y0], np.float32))


def is_correct(ground_truth: pd.DataFrame | None, query_id: str, reference_id: str) -> bool | None:
    """Whether the ground truth lists the pair (None without ground truth)."""
    if ground_truth is None:
        return None
    truth = ground_truth[(ground_truth.query_id == query_id) & (ground_truth.reference_id != "")]
    return reference_id in set(truth.reference_id)


def caption_lines(pick: Selected, view: str, found: verify.PairMatches, verdict: bool | None,
                  ground_truth: pd.DataFrame | None) -> list[str]:
    """Ids and score; the pipeline's inliers per view and what was recomputed and drawn; the verdict."""
    row = pick.row
    views = []
    for name in VERIFICATION_BRANCHES:
        inliers, matched = row.get(f"verify_{name}_n_inliers"), row.get(f"verify_{name}_n_matches")
        if inliers is not None and not pd.isna(inliers):
            flipped = " mirrored" if _number(row.get(f"verify_{name}_flipped")) > 0 else ""
            inverted = " inverted" if _number(row.get(f"verify_{name}_inverted")) > 0 else ""
            views.append(f"{name} {int(inliers)}/{_count(matched)}{flipped}{inverted}")
    return [
        f"query {row.query_id}  ->  reference {row.reference_id}    score {row.score:.4g}",
        f"inliers/matches: {', '.join(views) or 'none'}    drawn: {view} {found.n_inliers}/{found.n_matches}"
        + (f", {MAX_LINES} lines shown" if found.n_inliers > MAX_LINES else ""),
        f"{_verdict_text(verdict, ground_truth, row.query_id)}    {pick.reason}",
    ]


def _count(value: object) -> str:
    return "?" if value is None or pd.isna(value) else str(int(value))


def _verdict_text(verdict: bool | None, ground_truth: pd.DataFrame | None, query_id: str) -> str:
    if verdict is None:
        return "no ground truth"
    if verdict:
        return "CORRECT"
    truth = ground_truth[(ground_truth.query_id == query_id) & (ground_truth.reference_id != "")].reference_id
    return f"INCORRECT (truth: {', '.join(truth) or 'not a copy'})"


def render_pair(query_rgb: np.ndarray, reference_rgb: np.ndarray, found: verify.PairMatches,
                box: tuple[int, int, int, int] | None, lines: Sequence[str], verdict: bool | None) -> np.ndarray:
    """Query left, reference right, at a common height; inlier lines, outlier dots, box, caption."""
    left, left_scale = _panel(query_rgb)
    right, right_scale = _panel(reference_rgb)
    offset = left.shape[1] + GAP
    width = max(MIN_WIDTH, offset + right.shape[1])
    canvas = np.full((PANEL_HEIGHT + CAPTION_HEIGHT, width, 3), 255, np.uint8)
    canvas[:PANEL_HEIGHT, :left.shape[1]] = left
    canvas[:PANEL_HEIGHT, offset:offset + right.shape[1]] = right
    q = found.query_points * left_scale
    r = found.reference_points * right_scale + np.array([offset, 0], np.float32)
    _draw_outliers(canvas, np.concatenate([q[~found.inliers], r[~found.inliers]]))
    shown = _even_sample(np.flatnonzero(found.inliers), MAX_LINES)
    for (qx, qy), (rx, ry) in zip(_pixels(q[shown]), _pixels(r[shown])):
        cv2.line(canvas, (qx, qy), (rx, ry), INLIER_COLOUR, 1, cv2.LINE_AA)
        cv2.circle(canvas, (qx, qy), 2, INLIER_COLOUR, -1, cv2.LINE_AA)
        cv2.circle(canvas, (rx, ry), 2, INLIER_COLOUR, -1, cv2.LINE_AA)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v * left_scale)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), BOX_COLOUR, 3)
    _caption(canvas, lines, VERDICT_COLOURS[verdict])
    return canvas


def _panel(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """``rgb`` scaled to the panel height (narrower if it would be too wide), padded to that height."""
    h, w = rgb.shape[:2]
    scale = min(PANEL_HEIGHT / h, MAX_PANEL_WIDTH / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interpolation)
    panel = np.full((PANEL_HEIGHT, size[0], 3), 255, np.uint8)
    panel[:size[1]] = resized
    return panel, scale


def _even_sample(indices: np.ndarray, limit: int) -> np.ndarray:
    if len(indices) <= limit:
        return indices
    return indices[np.linspace(0, len(indices) - 1, limit).round().astype(int)]


def _pixels(points: np.ndarray) -> list[tuple[int, int]]:
    return [(int(round(x)), int(round(y))) for x, y in points]


def _draw_outliers(canvas: np.ndarray, points: np.ndarray) -> None:
    """Faint dots where rejected matches lie (blended, so they never hide the inliers)."""
    if not len(points):
        return
    layer = canvas.copy()
    for xy in _pixels(points):
        cv2.circle(layer, xy, 2, OUTLIER_COLOUR, -1, cv2.LINE_AA)
    cv2.addWeighted(layer, 0.4, canvas, 0.6, 0, dst=canvas)


def _caption(canvas: np.ndarray, lines: Sequence[str], background: tuple[int, int, int]) -> None:
    strip = Image.new("RGB", (canvas.shape[1], CAPTION_HEIGHT), background)
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        draw.text((8, 4 + 20 * i), line, fill=(20, 20, 20), font=_font())
    canvas[PANEL_HEIGHT:] = np.asarray(strip)


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=14)
