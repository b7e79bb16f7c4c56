"""Training the copy-region detector: Ultralytics' YOLOv5u on a prepared YOLO data set.

The original method (ISC 2021 matching track, 3rd place) runs a YOLOv5 detector of one
class, "copy region", over every query and matches the crop of its box as one more view of
the query. Here the detector is Ultralytics' YOLOv5u (``yolov5nu.yaml``), trained on images
synthesised from photos (:func:`d2lv.synth.detector_set.synthesise_training_set`): d2lv's training
photos for the shipped detector, the user's references for ``detect.train: true``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from d2lv.detect.runtime import offline_ultralytics, ultralytics_device

#: Ultralytics' bundled YOLOv5u architecture, nano scale; built from scratch (no pretrained weights).
MODEL_CONFIG = "yolov5nu.yaml"
#: The training run inside ``work_dir``: ``runs/detector/weights/{best,last}.pt``.
RUN_PROJECT, RUN_NAME = "runs", "detector"


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
    initial_weights: str | os.PathLike | None = None,
) -> Path:
    """Train YOLOv5u (nano) on ``data_yaml``, from scratch or from ``initial_weights`` (a detector
    .pt to go on training); copy its best weights to ``out_weights``.

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
    if initial_weights is not None and not Path(initial_weights).is_file():
        raise FileNotFoundError(f"initial detector weights not found: {initial_weights}")
    model = ultralytics.YOLO(str(initial_weights or MODEL_CONFIG), task="detect")
    model.train(
        data=str(Path(data_yaml).resolve()), epochs=epochs, imgsz=image_size, batch=batch,
        device=ultralytics_device(device), workers=workers, seed=seed, deterministic=True,
        project=str(work_dir / RUN_PROJECT), name=RUN_NAME, exist_ok=True, pretrained=initial_weights is not None,
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
