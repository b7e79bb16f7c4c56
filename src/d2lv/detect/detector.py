"""The copy-region detector: where, inside a query, a reference photo was placed.

Queries made by pasting a photo onto another picture, into a screenshot, under a meme
caption or inside borders hold the copy in only part of the frame. The original method
(ISC 2021 matching track, 3rd place) runs a YOLOv5 detector of one class, "copy region",
over every query and matches the crop of its box as one more view of the query.

Here the detector is Ultralytics' YOLOv5u (``yolov5nu.yaml``), trained from scratch on
a set synthesised from the user's references themselves (:func:`synthesise_training_set`):
positives put a reference inside a larger picture with the placing edit families of
:mod:`d2lv.synth.edits`, whose exact box becomes the label; negatives are references that fill
the frame, unedited or with full-frame edits, and carry no box.

Ultralytics is imported only through :func:`offline_ultralytics`, which makes it work
offline: it downloads no weights, fonts or datasets, checks no PyPI versions and sends
no analytics.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image
from tqdm import tqdm

from d2lv.io import tables
from d2lv.io.images import ImageError, load_image, shrink_long_side
from d2lv.synth import edits

CLASS_NAME = "copy region"
#: Ultralytics' bundled YOLOv5u architecture, nano scale; built from scratch (no pretrained weights).
MODEL_CONFIG = "yolov5nu.yaml"
#: Where a photo is put inside a larger picture, with the share of positives each gets. ``canvas``
#: is :func:`paste_on_canvas` (15-70% of the area, on a photo or a plain or gradient canvas); the
#: others are :func:`d2lv.synth.edits.apply_family` families that report the photo's box.
POSITIVE_KINDS: dict[str, float] = {"canvas": 0.4, "paste": 0.15, "padding": 0.15, "screenshot": 0.15, "meme": 0.15}
#: Edits after which the photo still fills the frame: a negative, with no box. ``none``: unedited.
NEGATIVE_KINDS: tuple[str, ...] = ("none", "mild", "crop", "filters", "text", "emoji")
#: Chance that a positive also gets a text overlay, and an emoji overlay, on top.
OVERLAY_TEXT, OVERLAY_EMOJI = 0.4, 0.3
VAL_FRACTION = 0.1
#: Boxes with a side shorter than this many pixels are rejected.
MIN_BOX_SIDE = 8
#: The training run inside ``work_dir``: ``runs/detector/weights/{best,last}.pt``.
RUN_PROJECT, RUN_NAME = "runs", "detector"

Box = tuple[int, int, int, int]


# --- Ultralytics, offline ---------------------------------------------------------------


def offline_ultralytics(config_dir: str | os.PathLike, quiet: bool = False) -> types.ModuleType:
    """Import ``ultralytics`` set up to touch no network, and return it.

    Ultralytics reads its environment once, at import: ``YOLO_OFFLINE`` (no downloads, no
    update checks, no analytics), ``YOLO_CONFIG_DIR`` (where ``settings.json`` lives, here
    ``config_dir``), ``YOLO_AUTOINSTALL`` (no pip installs) and ``YOLO_VERBOSE``. So the
    first call in a process fixes the config folder; later calls only change verbosity.

    Settings turn off sync (analytics, error reports) and every logging integration, and
    the Ultralytics Platform API key is dropped from the environment, so no run is
    streamed anywhere. Torch keeps its thread count (Ultralytics would cap it at one), and
    ``PIL.Image.open`` stays Pillow's own: Ultralytics replaces it process-wide with one
    that, given a file that is no image, tries to install a HEIF plugin and raises
    ModuleNotFoundError, which :func:`d2lv.io.images.load_image` would not report as ImageError.
    Dataset checks look for the plotting font ``Arial.ttf`` in the config folder and probe
    its download URL when it is missing; matplotlib's DejaVu Sans is put there under that
    name (labels are never drawn: training passes ``plots=False``).
    """
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir.resolve())
    os.environ["YOLO_VERBOSE"] = str(not quiet)
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    omp_threads, pil_open = os.environ.get("OMP_NUM_THREADS"), Image.open
    import torch  # noqa: F401  (first: importing ultralytics sets OMP_NUM_THREADS=1, which caps torch's threads)
    import ultralytics
    from ultralytics.utils import LOGGER, USER_CONFIG_DIR

    if omp_threads is None:  # nor should that cap reach other libraries and subprocesses
        os.environ.pop("OMP_NUM_THREADS", None)
    Image.open = pil_open  # Ultralytics' replacement fails on a non-image with ModuleNotFoundError (pi_heif)
    LOGGER.setLevel(logging.ERROR if quiet else logging.INFO)
    no_integrations = dict.fromkeys(("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"), False)
    wanted = {"sync": False, "api_key": "", **no_integrations}
    if any(ultralytics.settings.get(key) != value for key, value in wanted.items()):
        ultralytics.settings.update(wanted)
    _provide_font(Path(USER_CONFIG_DIR) / "Arial.ttf")
    return ultralytics


def _provide_font(target: Path) -> None:
    if not target.is_file():
        import matplotlib

        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


def ultralytics_device(device: str) -> str:
    """``auto``: the first CUDA device when there is one, else ``cpu``; CUDA asked for but
    missing falls back to the CPU with a warning."""
    from d2lv.descriptor.core import resolve_device

    return str(resolve_device(device))


# --- training set -------------------------------------------------------------------------


def _gradient(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A linear gradient between two random colours, at a random angle."""
    width, height = size
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    start, end = (rng.integers(0, 256, size=3).astype(np.float32) for _ in range(2))
    pixels = start + t[..., None] * (end - start)
    return Image.fromarray(pixels.round().astype(np.uint8))


def _canvas(photo: Image.Image, rng: np.random.Generator, backdrop: edits.Backdrop) -> Image.Image:
    """Another reference (half the time), else a plain or gradient canvas 0.8-1.6x the photo's sides."""
    if rng.random() < 0.5:
        return backdrop().convert("RGB")
    size = tuple(max(16, round(side * rng.uniform(0.8, 1.6))) for side in photo.size)
    if rng.random() < 0.5:
        return Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, size=3)))
    return _gradient(size, rng)


def paste_on_canvas(
    photo: Image.Image, canvas: Image.Image, rng: np.random.Generator, area_range: tuple[float, float] = (0.15, 0.7)
) -> edits.Edited:
    """``photo``, resized (aspect kept) to cover a share of ``canvas`` drawn from ``area_range``
    (less when its shape does not allow it), pasted at a random position, with its box."""
    cw, ch = canvas.size
    area = rng.uniform(*area_range)
    scale = min(math.sqrt(area * cw * ch / (photo.width * photo.height)), cw / photo.width, ch / photo.height)
    w, h = max(1, math.floor(photo.width * scale)), max(1, math.floor(photo.height * scale))
    x, y = int(rng.integers(cw - w + 1)), int(rng.integers(ch - h + 1))
    out = canvas.convert("RGB")
    out.paste(photo.resize((w, h), Image.LANCZOS), (x, y))
    return edits.Edited(out, ("paste_on_canvas",), (x, y, x + w, y + h))


def _positive(photo: Image.Image, kind: str, rng: np.random.Generator, backdrop: edits.Backdrop) -> edits.Edited:
    if kind == "canvas":
        placed = paste_on_canvas(photo, _canvas(photo, rng, backdrop), rng)
    else:
        placed = edits.apply_family(kind, photo, rng, backdrop)
    image, steps = placed.image, placed.steps
    for name, chance, overlay in (("text", OVERLAY_TEXT, edits.text), ("emoji", OVERLAY_EMOJI, edits.emoji)):
        if rng.random() < chance:
            image, steps = overlay(image, rng).convert("RGB"), (*steps, name)
    return edits.Edited(image, steps, placed.box)


def _negative(photo: Image.Image, kind: str, rng: np.random.Generator) -> edits.Edited:
    return edits.Edited(photo, ()) if kind == "none" else edits.apply_family(kind, photo, rng)


def yolo_label(box: Box, size: tuple[int, int]) -> str:
    """The YOLO label line of ``box`` (pixels, ``x1``/``y1`` exclusive) in an image of ``size``:
    class 0, then centre and size normalised to the image."""
    (x0, y0, x1, y1), (width, height) = box, size
    values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return "0 " + " ".join(f"{v:.6f}" for v in values) + "\n"


def _plan(n_images: int, negative_fraction: float, seed: int) -> tuple[list[str], np.ndarray]:
    """The kind of every image (drawn so the shares are exact) and which images go to validation."""
    rng = np.random.default_rng([seed, n_images])
    n_negative = round(n_images * negative_fraction)
    weights = np.array(list(POSITIVE_KINDS.values()))
    positives = rng.choice(list(POSITIVE_KINDS), size=n_images - n_negative, p=weights / weights.sum()).tolist()
    negatives = [NEGATIVE_KINDS[i % len(NEGATIVE_KINDS)] for i in range(n_negative)]
    kinds = [str(k) for k in rng.permutation(positives + negatives)]
    is_val = np.zeros(n_images, dtype=bool)
    is_val[rng.choice(n_images, size=max(1, round(n_images * VAL_FRACTION)), replace=False)] = True
    return kinds, is_val


def synthesise_training_set(
    reference_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    n_images: int,
    seed: int,
    image_size: int,
    negative_fraction: float = 0.25,
    progress: bool = True,
) -> Path:
    """Write a one-class YOLO training set made from the references, and return its ``data.yaml``.

    Each image starts from a random reference. Positives (``1 - negative_fraction`` of the
    images) place it inside a larger picture (:data:`POSITIVE_KINDS`), sometimes with text
    or emoji drawn on top, and are labelled with the box of the photo; negatives
    (:data:`NEGATIVE_KINDS`) leave it filling the frame and have an empty label file. About
    10% of the images go to the validation split. Images are JPEG with a long side of at
    most ``2 * image_size``. The same ``seed`` gives the same set.

    ``out_dir`` gets ``images/{train,val}``, ``labels/{train,val}`` (both replaced) and
    ``data.yaml``, in Ultralytics' layout with absolute paths.
    """
    import yaml

    if not reference_paths:
        raise ValueError("no reference images to synthesise a detector training set from")
    if n_images < 2:
        raise ValueError(f"need at least 2 training images (one for validation), got {n_images}")
    out = Path(out_dir).resolve()
    for folder in ("images", "labels"):
        shutil.rmtree(out / folder, ignore_errors=True)
        for split in ("train", "val"):
            (out / folder / split).mkdir(parents=True)
    max_side = 2 * image_size
    kinds, is_val = _plan(n_images, negative_fraction, seed)
    for i in tqdm(range(n_images), desc="detector training set", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, i])
        edited = synthesise_example(reference_paths, kinds[i], rng, max_side)
        image = shrink_long_side(edited.image, max_side)
        split = "val" if is_val[i] else "train"
        image.save(out / "images" / split / f"{i:06d}.jpg", quality=95)
        label = "" if edited.box is None else yolo_label(edited.box, edited.image.size)
        (out / "labels" / split / f"{i:06d}.txt").write_text(label)
    data = {"path": str(out), "train": "images/train", "val": "images/val", "names": {0: CLASS_NAME}}
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def synthesise_example(
    reference_paths: Sequence[str | os.PathLike], kind: str, rng: np.random.Generator, max_side: int
) -> edits.Edited:
    """One training image of ``kind`` (a key of :data:`POSITIVE_KINDS` or one of :data:`NEGATIVE_KINDS`),
    before the final resize: a random reference, edited, with its box (None for negatives).
    References are first shrunk to a long side of at most ``max_side``."""

    def load(j: int) -> Image.Image:
        return shrink_long_side(Image.fromarray(load_image(reference_paths[j])), max_side)

    index = int(rng.integers(len(reference_paths)))
    photo = load(index)
    if kind in NEGATIVE_KINDS:
        return _negative(photo, kind, rng)

    def backdrop() -> Image.Image:
        """Another reference (the photo itself when it is the only one)."""
        others = len(reference_paths) - 1
        return load((index + 1 + int(rng.integers(others))) % len(reference_paths)) if others else photo

    return _positive(photo, kind, rng, backdrop)


# --- training -------------------------------------------------------------------------------


def train_detector(
    data_yaml: str | os.PathLike,
    out_weights: str | os.PathLike,
    epochs: int,
    image_size: int,
    batch: int,
    device: str,
    workers: int,
    seed: int,
    work_dir: str | os.PathLike,
    progress: bool = True,
    config_dir: str | os.PathLike | None = None,
) -> Path:
    """Train YOLOv5u (nano) from scratch on ``data_yaml``; copy its best weights to ``out_weights``.

    The run lives in ``work_dir/runs/detector`` (replaced); Ultralytics' settings in
    ``config_dir`` (default ``work_dir/ultralytics-config``). Mixed precision stays off:
    on CUDA, Ultralytics' AMP check would download a pretrained model to compare against.
    Mosaic augmentation is off too: a full-frame negative shrunk into a quarter of a mosaic
    looks exactly like a pasted copy, yet has no box.
    """
    work_dir = Path(work_dir).resolve()
    ultralytics = offline_ultralytics(config_dir or work_dir / "ultralytics-config", quiet=not progress)
    run_dir = work_dir / RUN_PROJECT / RUN_NAME
    shutil.rmtree(run_dir, ignore_errors=True)
    model = ultralytics.YOLO(MODEL_CONFIG, task="detect")
    model.train(
        data=str(Path(data_yaml).resolve()), epochs=epochs, imgsz=image_size, batch=batch,
        device=ultralytics_device(device), workers=workers, seed=seed, deterministic=True,
        project=str(work_dir / RUN_PROJECT), name=RUN_NAME, exist_ok=True, pretrained=False,
        amp=False, plots=False, val=True, verbose=progress, mosaic=0.0,
    )
    weights = run_dir / "weights"
    best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
    if not best.is_file():
        raise FileNotFoundError(f"training wrote no weights in {weights}; see the Ultralytics log above")
    out = Path(out_weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, out)
    return out


# --- detection ------------------------------------------------------------------------------


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
    """Save the crop losslessly; its row of the crops manifest."""
    x0, y0, x1, y1 = box
    Image.fromarray(pixels[y0:y1, x0:x1]).save(path)
    return {"id": path.stem, "path": str(path), "width": x1 - x0, "height": y1 - y0,
            "bytes": path.stat().st_size, "status": "ok", "reason": ""}


def detect(
    manifest_frame: pd.DataFrame,
    weights: str | os.PathLike,
    crops_dir: str | os.PathLike,
    min_confidence: float = 0.25,
    max_area: float = 0.85,
    max_aspect: float = 4.0,
    image_size: int = 320,
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
