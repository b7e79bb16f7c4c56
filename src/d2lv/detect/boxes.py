"""Detection: where, inside each query, a reference photo was placed, and its crop.

Queries made by pasting a photo onto another picture, into a screenshot, under a meme
caption or inside borders hold the copy in only part of the frame. The trained detector
(:mod:`d2lv.detect.train`) finds that region; :func:`choose_boxes` keeps the original
method's one box per query and, where the detector sees another photo-like region beside
it, a second one; :func:`detect` writes each as a lossless crop: the crop view of the
query (:mod:`d2lv.io.views`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from PIL import Image
from tqdm import tqdm

from d2lv.detect.params import BoxParams, DetectorParams
from d2lv.detect.runtime import offline_ultralytics, ultralytics_device
from d2lv.device import QUERY_TORCH_THREADS
from d2lv.io import tables, views
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


def _write_crop(crop: np.ndarray, path: Path) -> dict[str, object]:
    """Save the crop losslessly (fast PNG compression: a third of the default level's time); its row of
    the crops manifest, but for the id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop).save(path, compress_level=1)
    return {"path": str(path), "width": crop.shape[1], "height": crop.shape[0], "bytes": path.stat().st_size,
            "status": "ok", "reason": ""}


def _remove_stale_crops(crops_dir: Path, query_id: str) -> None:
    (crops_dir / f"{query_id}.png").unlink(missing_ok=True)
    for stale in (crops_dir / query_id).glob("*.png"):
        stale.unlink()


class Detector:
    """The copy-region detector, loaded once: images in, the boxes worth cropping out (:func:`choose_boxes`).

    Each image is predicted on its own, letterboxed to the same square input and with torch on
    :data:`d2lv.device.QUERY_TORCH_THREADS` threads, so that its boxes do not depend on the other images it
    is detected with or on the job's cores, to the last bit of a confidence (a batch's convolutions sum in
    another order): the workflow's boxes of a query are the ones ``d2lv query`` finds.
    Ultralytics' settings live in ``config_dir``.

    Raises:
        FileNotFoundError: ``weights`` does not exist.
    """

    def __init__(self, weights: str | os.PathLike, config_dir: str | os.PathLike, rule: BoxParams = BoxParams(),
                 image_size: int = DetectorParams.image_size, device: str = "auto", quiet: bool = True):
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(
                f"detector weights not found: {weights}. Train them with `d2lv train-detector` and point the "
                "config key detect.weights at the .pt file it writes."
            )
        torch.set_num_threads(QUERY_TORCH_THREADS)
        ultralytics = offline_ultralytics(config_dir, quiet=quiet)
        self.model = ultralytics.YOLO(str(weights), task="detect")
        self.rule = rule
        # rect=False: a square letterbox for every image. Ultralytics would otherwise pad an image to its own
        # rectangle (the detector is trained on squares).
        self.predict = {"imgsz": image_size, "device": ultralytics_device(device), "conf": rule.confidence,
                        "rect": False, "verbose": False}
        # Ultralytics' predictor keeps each call's images and results on itself: threads that share a
        # detector (d2lv serve's workers) predict one at a time
        self._predicting = threading.Lock()

    def boxes(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        """The chosen boxes of one ``HxWx3`` uint8 RGB image, most confident first."""
        # Ultralytics takes NumPy images in OpenCV's BGR order.
        with self._predicting:
            found = self.model.predict([np.ascontiguousarray(rgb[:, :, ::-1])], batch=1, **self.predict)[0].boxes
        rule = self.rule
        return choose_boxes(found.xyxy.cpu().numpy(), found.conf.cpu().numpy(), rgb.shape[1], rgb.shape[0],
                            rule.confidence, rule.max_area, rule.max_aspect, rule.max_crops, rule.max_overlap)


def crops(query_id: str, rgb: np.ndarray, chosen: Sequence[tuple[Box, float]]) -> list[tuple[str, np.ndarray]]:
    """Each chosen box's crop (:func:`d2lv.io.views.crop_id`, pixels), in the image's pixels."""
    return [(views.crop_id(query_id, rank), rgb[y0:y1, x0:x1])
            for rank, ((x0, y0, x1, y1), _) in enumerate(chosen, start=1)]


def box_frame(boxes: dict[str, list[tuple[Box, float]]]) -> pd.DataFrame:
    """Query id -> its chosen boxes, as a table of :data:`d2lv.io.tables.BOXES`."""
    return _frame([row for query_id, chosen in boxes.items() for row in _box_rows(query_id, chosen)], tables.BOXES)


def detect(
    manifest_frame: pd.DataFrame,
    detector: Detector,
    crops_dir: str | os.PathLike,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find the copy regions of every image of a manifest (columns ``id``, ``path``) and crop them.

    Boxes are chosen by ``detector`` in the pixels of the image as :func:`d2lv.io.images.load_image` gives it
    (EXIF orientation applied). Each kept box is cropped losslessly to ``crops_dir/<crop id>.png``
    (:func:`d2lv.io.views.crop_id`: the first box's crop is ``<id>.png``, the second's ``<id>/2.png``);
    stale crops of an image are removed. An unreadable image (or one above ``max_pixels``, the limit the
    manifest decoded it under) gets no box.

    Returns:
        The boxes (schema :data:`d2lv.io.tables.BOXES`: a row per kept box, or one row for an
        image without any) and the manifest of the crops (schema :data:`d2lv.io.tables.MANIFEST`,
        keyed by crop id).
    """
    crops_dir = Path(crops_dir)
    crops_dir.mkdir(parents=True, exist_ok=True)
    found, crop_rows = {}, []
    for query_id, path in tqdm(list(manifest_frame[["id", "path"]].itertuples(index=False)), desc="detect",
                               unit="img", disable=not progress):
        _remove_stale_crops(crops_dir, query_id)
        try:
            pixels = load_image(path, max_pixels)
        except ImageError:
            found[query_id] = []
            continue
        found[query_id] = detector.boxes(pixels)
        for crop, crop_pixels in crops(query_id, pixels, found[query_id]):
            crop_rows.append({"id": crop, **_write_crop(crop_pixels, crops_dir / f"{crop}.png")})
    return box_frame(found), _frame(crop_rows, tables.MANIFEST)


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
