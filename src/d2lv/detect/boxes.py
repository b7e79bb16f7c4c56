"""Detection: where, inside each query, a reference photo was placed, and its crop.

Queries made by pasting a photo onto another picture, into a screenshot, under a meme
caption or inside borders hold the copy in only part of the frame. The trained detector
(:mod:`d2lv.detect.train`) finds that region; :func:`choose_box` keeps the original
method's one box per query, and :func:`detect` writes it as a lossless crop, one more
view of the query.
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

from d2lv.detect.params import BoxParams, DetectorParams
from d2lv.detect.runtime import offline_ultralytics, ultralytics_device
from d2lv.io import tables
from d2lv.io.images import Box, ImageError, load_image

#: Boxes with a side shorter than this many pixels are rejected.
MIN_BOX_SIDE = 8


def choose_box(
    boxes_xyxy: np.ndarray,
    confidences: np.ndarray,
    width: int,
    height: int,
    min_confidence: float,
    max_area: float = 0.85,
    max_aspect: float = 4.0,
) -> tuple[Box, float] | None:
    """The original method's rule: the most confident box that is worth cropping, or None.

    Boxes are clipped to the ``width`` x ``height`` image and rounded to whole pixels. A box
    is kept when its confidence is at least ``min_confidence``, it covers at most
    ``max_area`` of the image (a box around the whole frame is no copy region), both sides
    are at least :data:`MIN_BOX_SIDE` pixels and its aspect ratio lies within
    1:``max_aspect`` .. ``max_aspect``:1.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(confidences, dtype=np.float64).reshape(-1)
    clipped = np.rint(np.clip(boxes, 0, [width, height, width, height])).astype(np.int64)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    ok = (scores >= min_confidence) & (w >= MIN_BOX_SIDE) & (h >= MIN_BOX_SIDE)
    ok &= w * h <= max_area * width * height
    ok &= (w <= max_aspect * h) & (h <= max_aspect * w)
    if not ok.any():
        return None
    best = int(np.flatnonzero(ok)[np.argmax(scores[ok])])
    return tuple(int(v) for v in clipped[best]), float(scores[best])


def _box_row(query_id: str, chosen: tuple[Box, float] | None) -> dict[str, object]:
    if chosen is None:
        return {"query_id": query_id, "cropped": False, "x0": None, "y0": None, "x1": None, "y1": None,
                "confidence": None}
    (x0, y0, x1, y1), confidence = chosen
    return {"query_id": query_id, "cropped": True, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "confidence": confidence}


def _write_crop(pixels: np.ndarray, box: Box, path: Path) -> dict[str, object]:
    """Save the crop losslessly (fast PNG compression: a third of the default level's time); its row of
    the crops manifest."""
    x0, y0, x1, y1 = box
    Image.fromarray(pixels[y0:y1, x0:x1]).save(path, compress_level=1)
    return {"id": path.stem, "path": str(path), "width": x1 - x0, "height": y1 - y0,
            "bytes": path.stat().st_size, "status": "ok", "reason": ""}


def detect(
    manifest_frame: pd.DataFrame,
    weights: str | os.PathLike,
    crops_dir: str | os.PathLike,
    min_confidence: float = BoxParams.confidence,
    max_area: float = BoxParams.max_area,
    max_aspect: float = BoxParams.max_aspect,
    image_size: int = DetectorParams.image_size,
    device: str = "auto",
    progress: bool = True,
    config_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find the copy region of every image of a manifest (columns ``id``, ``path``) and crop it.

    Boxes are chosen with :func:`choose_box`, in the pixels of the image as
    :func:`d2lv.io.images.load_image` gives it (EXIF orientation applied); each kept box is
    cropped to the lossless ``crops_dir/<id>.png`` (a stale crop of an image without a box
    is removed). An unreadable image gets no box. Ultralytics' settings live in
    ``config_dir`` (default: ``ultralytics-config`` next to ``crops_dir``).

    Returns:
        The boxes (schema :data:`d2lv.io.tables.BOXES`, one row per image) and the manifest of
        the crops (schema :data:`d2lv.io.tables.MANIFEST`, ids of the images they come from).

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
    predict = {"imgsz": image_size, "device": ultralytics_device(device), "conf": min_confidence, "verbose": False}
    box_rows, crop_rows = [], []
    rows = list(manifest_frame[["id", "path"]].itertuples(index=False))
    with tqdm(total=len(rows), desc="detect", unit="img", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            for (query_id, _), pixels, chosen in _detect_batch(model, batch, predict, max_area, max_aspect):
                crop = crops_dir / f"{query_id}.png"
                crop.unlink(missing_ok=True)
                box_rows.append(_box_row(query_id, chosen))
                if chosen is not None:
                    crop_rows.append(_write_crop(pixels, chosen[0], crop))
            bar.update(len(batch))
    return _frame(box_rows, tables.BOXES), _frame(crop_rows, tables.MANIFEST)


def _detect_batch(
    model: object, batch: Sequence[tuple[str, str]], predict: dict[str, object], max_area: float, max_aspect: float
) -> list[tuple[tuple[str, str], np.ndarray | None, tuple[Box, float] | None]]:
    """Each row of ``batch`` with its pixels and chosen box (None for both if unreadable)."""
    loaded: list[np.ndarray | None] = []
    for _, path in batch:
        try:
            loaded.append(load_image(path))
        except ImageError:
            loaded.append(None)
    readable = [pixels for pixels in loaded if pixels is not None]
    # Ultralytics takes NumPy images in OpenCV's BGR order.
    results = iter(model.predict([np.ascontiguousarray(p[:, :, ::-1]) for p in readable], batch=len(readable),
                                 **predict) if readable else [])
    out = []
    for row, pixels in zip(batch, loaded):
        chosen = None
        if pixels is not None:
            found = next(results).boxes
            chosen = choose_box(found.xyxy.cpu().numpy(), found.conf.cpu().numpy(), pixels.shape[1],
                                pixels.shape[0], float(predict["conf"]), max_area, max_aspect)
        out.append((row, pixels, chosen))
    return out


def _frame(rows: list[dict[str, object]], schema: pa.Schema) -> pd.DataFrame:
    """``rows`` as a frame with the columns and dtypes of ``schema`` (nullable ints for missing boxes)."""
    if not rows:
        return tables.empty_frame(schema)
    frame = pd.DataFrame(rows, columns=schema.names)
    for column in ("x0", "y0", "x1", "y1"):
        if column in frame:
            frame[column] = frame[column].astype("Int32")
    if "confidence" in frame:
        frame["confidence"] = frame["confidence"].astype("float32")
    return frame
