"""Options of the copy-region detector: its network, its training, which box it keeps.

Kept apart from the modules that do the work so that the workflow can read them at
parse time without importing torch or Ultralytics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from d2lv.device import DEVICES
from d2lv.errors import InputError
from d2lv.options import Options, option

#: The copy-region detector shipped with d2lv (``detect.weights: ""``): YOLOv5u nano trained by
#: ``bash scripts/train-detector.sh`` on images synthesised from the training photos only (UKBench,
#: BSDS500 train; see scripts/training-photos.sh), at :attr:`DetectorParams.image_size`'s default.
SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "copy-region-yolov5nu.pt"


def detector_weights(weights: str, train: bool, trained: str) -> str:
    """The weights a run detects with: the user's, ``trained`` (the per-run training's output) when
    ``train`` is set, else the shipped ones."""
    if weights and train:
        raise InputError("detect.weights and detect.train: true exclude each other: give your own weights, "
                         "or train on the references, not both")
    if weights:
        return weights
    return trained if train else str(SHIPPED_WEIGHTS)


@dataclass(frozen=True)
class DetectStageParams(Options):
    """Whether and with which weights the workflow detects copy regions (read by the workflow, not a subcommand)."""

    section: ClassVar[str] = "detect"
    enabled: bool = option(True, "crop each query to its detected copy region and run the crop branch on the crops")
    train: bool = option(False, "train a detector on images synthesised from the references (train_* keys) "
                         "instead of using the shipped one; excludes weights")
    weights: str = option("", "your own ultralytics weights file (.pt, unpickled, so only one you trust); \"\" uses "
                          "the detector shipped with d2lv (or, with train true, one trained on the references)")


@dataclass(frozen=True)
class DetectorParams(Options):
    """The detector network, in training and in detection."""

    section: ClassVar[str] = "detect"
    image_size: int = option(256, "network input side (a multiple of 32); detect with the training one", minimum=32,
                            multiple_of=32)
    device: str = option("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)


@dataclass(frozen=True)
class TrainingParams(Options):
    """Training the detector on images synthesised from the references."""

    section: ClassVar[str] = "detect"
    train_images: int = option(2000, "training images to synthesise (10%% for validation)", flags=("--images",),
                               minimum=2)
    train_epochs: int = option(20, "training epochs", flags=("--epochs",), minimum=1)
    train_batch_size: int = option(16, "images per training batch", flags=("--batch",), minimum=1)
    train_from: str = option("shipped", "weights to go on training: shipped (the shipped detector's), scratch (none), "
                             "or a detector .pt", flags=("--initial-weights",), min_length=1)

    def initial_weights(self) -> Path | None:
        """The weights training starts from (None: from scratch)."""
        if self.train_from == "scratch":
            return None
        return SHIPPED_WEIGHTS if self.train_from == "shipped" else Path(self.train_from)


@dataclass(frozen=True)
class BoxParams(Options):
    """Which detected boxes are cropped: the original method's rule for the first, then further ones."""

    section: ClassVar[str] = "detect"
    confidence: float = option(0.25, "ignore boxes less confident than this", minimum=0, maximum=1)
    max_area: float = option(0.85, "ignore boxes covering more of the image than this", maximum=1, exclusive_minimum=0)
    max_aspect: float = option(4.0, "ignore boxes longer than this times their width (either way)", minimum=1)
    max_crops: int = option(2, "crop at most this many boxes per query (1: the original method's one crop)", minimum=1)
    max_overlap: float = option(0.3, "crop a further box only if its IoU with every box cropped before it is "
                                "at most this", minimum=0, maximum=1)
