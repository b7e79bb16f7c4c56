"""Detection: where, inside each query, a reference photo was placed, and its crop.

Queries made by pasting a photo onto another picture, into a screenshot, under a meme
caption or inside borders hold the copy in only part of the frame. The trained detector
(:mod:`d2lv.detect.train`) finds that region; :func:`choose_boxes` keeps the original
method's one box per query and, where the detector sees another photo-like region beside
it, a second one; :func:`detect` writes each as a lossless crop: the crop view of the
query (:mod:`d2lv.detect.views`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image
from tqdm import tqdm

from d2lv.detect import views
from d2lv.detect.params import BoxParams, DetectorParams
from d2lv.detect.runtime import offline_ultralytics, ultralytics_device
from d2lv.io import tables
from d2lv.io.images import DEFAULT_MAX_PIXELS, Box, ImageError, box_iou, load_image

#: Boxes with a side shorter than this many pixels are rejected.
MIN_BOX_SIDE = 8


def choose_boxes(
    boxes_xyxy: np.ndarray,
    confidences: np.ndarray,
    width: int,
    height: int,
    min_confidence: float,
    max_area: float = BoxParams.max_area,
    max_aspect: float = BoxParams.max_aspect,
    max_crops: int = BoxParams.max_crops,
    max_overlap: float = BoxParams.max_overlap,
) -> list[tuple[Box, float]]:
    """The boxes worth cropping, most confident first: the original method's one box, then others.

    Boxes are clipped to the ``width`` x ``height`` image and rounded to whole pixels. A box
    is acceptable when its confidence is at least ``min_confidence``, it covers at most
    ``max_area`` of the image (a box around the whole frame is no copy region), both sides
    are at least :data:`MIN_BOX_SIDE` pixels and its aspect ratio lies within
    1:``max_aspect`` .. ``max_aspect``:1. The most confident acceptable box comes first (the
    original rule); up to ``max_crops`` boxes follow in order of confidence, each overlapping
    every box kept before it by an IoU of at most ``max_overlap``: a paste beside another
    photo-like region gets a crop of each, a box around the same region is not cropped twice.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(confidences, dtype=np.float64).reshape(-1)
    clipped = np.rint(np.clip(boxes, 0, [width, height, width, height])).astype(np.int64)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    ok = (scores >= min_confidence) & (w >= MIN_BOX_SIDE) & (h >= MIN_BOX_SIDE)
    ok &= w * h <= max_area * width * height
    ok &= (w <= max_aspect * h) & (h <= max_aspect * w)
    kept: list[int] = []
    for candidate in sorted(np.flatnonzero(ok), key=lambda i: -scores[i]):
        if len(kept) == max_crops:
            break
        if not kept or box_iou(clipped[kept], clipped[[candidate] * len(kept)]).max() <= max_overlap:
            kept.append(int(candidate))
    return [(tuple(int(v) for v in clipped[i]), float(scores[i])) for i in kept]


def _box_rows(query_id: str, chosen: Sequence[tuple[Box, float]]) -> list[dict[str, object]]:
    if not chosen:
        return [{"query_id": query_id, "cropped": False, "rank": None, "x0": None, "y0": None, "x1": None,
                 "y1": None, "confidence": None}]
    return [{"query_id": query_id, "cropped": True, "rank": rank, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
             "confidence": confidence} for rank, ((x0, y0, x1, y1), confidence) in enumerate(chosen, start=1)]


def _write_crop(pixels: np.ndarray, box: Box, path: Path) -> dict[str, object]:
    """Save the crop losslessly (fast PNG compression: a third of the default level's time); its row of
    the crops manifest, but for the id."""
    x0, y0, x1, y1 = box
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[y0:y1, x0:x1]).save(path, compress_level=1)
    return {"path": str(path), "width": x1 - x0, "height": y1 - y0, "bytes": path.stat().st_size,
            "status": "ok", "reason": ""}


def _remove_stale_crops(crops_dir: Path, query_id: str) -> None:
    (crops_dir / f"{query_id}.png").unlink(missing_ok=True)
    for stale in (crops_dir / query_id).glob("*.png"):
        stale.unlink()


def detect(
    manifest_frame: pd.DataFrame,
    weights: str | os.PathLike,
    crops_dir: str | os.PathLike,
    rule: BoxParams = BoxParams(),
    image_size: int = DetectorParams.image_size,
    device: str = "auto",
    progress: bool = True,
    config_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find the copy regions of every image of a manifest (columns ``id``, ``path``) and crop them.

    Boxes are chosen with :func:`choose_boxes` and ``rule``, in the pixels of the image as
    :func:`d2lv.io.images.load_image` gives it (EXIF orientation applied). Each kept box is
    cropped losslessly to ``crops_dir/<crop id>.png`` (:func:`d2lv.detect.views.crop_id`: the
    first box's crop is ``<id>.png``, the second's ``<id>/2.png``); stale crops of an image are
    removed. An unreadable image (or one above ``max_pixels``, the limit the manifest decoded it under)
    gets no box. Every image is letterboxed to the same square
    input, so that its boxes do not depend on the other images of its batch. Ultralytics'
    settings live in ``config_dir`` (default: ``ultralytics-config`` next to ``crops_dir``).

    Returns:
        The boxes (schema :data:`d2lv.io.tables.BOXES`: a row per kept box, or one row for an
        image without any) and the manifest of the crops (schema :data:`d2lv.io.tables.MANIFEST`,
        keyed by crop id).

    Raises:
        FileNotFoundError: ``weights`` does not exist.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(
            f"detector weights not found: {weights}. Train them with `d2lv train-detector` and point the "
            "config key detect.weights at the .pt file it writes."
        )
    crops_dir = Path(crops_dir)
    crops_dir.mkdir(parents=True, exist_ok=True)
    ultralytics = offline_ultralytics(config_dir or crops_dir.resolve().parent / "ultralytics-config",
                                      quiet=not progress)
    model = ultralytics.YOLO(str(weights), task="detect")
    # rect=False: a square letterbox for every image. Ultralytics would otherwise pad a batch of
    # same-shaped images to their own rectangle and any other batch to the square, so a query's
    # boxes would depend on its neighbours in the manifest (the detector is trained on squares).
    predict = {"imgsz": image_size, "device": ultralytics_device(device), "conf": rule.confidence, "rect": False,
               "verbose": False}
    box_rows, crop_rows = [], []
    rows = list(manifest_frame[["id", "path"]].itertuples(index=False))
    with tqdm(total=len(rows), desc="detect", unit="img", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            for (query_id, _), pixels, chosen in _detect_batch(model, batch, predict, rule, max_pixels):
                _remove_stale_crops(crops_dir, query_id)
                box_rows.extend(_box_rows(query_id, chosen))
                for rank, (box, _) in enumerate(chosen, start=1):
                    crop = views.crop_id(query_id, rank)
                    crop_rows.append({"id": crop, **_write_crop(pixels, box, crops_dir / f"{crop}.png")})
            bar.update(len(batch))
    return _frame(box_rows, tables.BOXES), _frame(crop_rows, tables.MANIFEST)


def _detect_batch(
    model: object, batch: Sequence[tuple[str, str]], predict: dict[str, object], rule: BoxParams, max_pixels: int
) -> list[tuple[tuple[str, str], np.ndarray | None, list[tuple[Box, float]]]]:
    """Each row of ``batch`` with its pixels and chosen boxes (None and none if unreadable)."""
    loaded: list[np.ndarray | None] = []
    for _, path in batch:
        try:
            loaded.append(load_image(path, max_pixels))
        except ImageError:
            loaded.append(None)
    readable = [pixels for pixels in loaded if pixels is not None]
    # Ultralytics takes NumPy images in OpenCV's BGR order.
    results = iter(model.predict([np.ascontiguousarray(p[:, :, ::-1]) for p in readable], batch=len(readable),
                                 **predict) if readable else [])
    out = []
    for row, pixels in zip(batch, loaded):
        chosen = []
        if pixels is not None:
            found = next(results).boxes
            chosen = choose_boxes(found.xyxy.cpu().numpy(), found.conf.cpu().numpy(), pixels.shape[1],
                                  pixels.shape[0], rule.confidence, rule.max_area, rule.max_aspect, rule.max_crops,
                                  rule.max_overlap)
        out.append((row, pixels, chosen))
    return out


def _frame(rows: list[dict[str, object]], schema: pa.Schema) -> pd.DataFrame:
    """``rows`` as a frame with the columns and dtypes of ``schema`` (nullable ints for missing boxes)."""
    if not rows:
        return tables.empty_frame(schema)
    frame = pd.DataFrame(rows, columns=schema.names)
    for column in ("rank", "x0", "y0", "x1", "y1"):
        if column in frame:
            frame[column] = frame[column].astype("Int32")
    if "confidence" in frame:
        frame["confidence"] = frame["confidence"].astype("float32")
    return frame
