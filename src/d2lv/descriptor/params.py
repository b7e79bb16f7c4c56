"""Options of the global branch (config section ``global``): the network, its training, whitening, search.

Kept apart from the modules that do the work so that the workflow can read them
at parse time without importing torch, timm or faiss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from d2lv.device import DEVICES
from d2lv.options import Options, option

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
DEFAULT_IMAGE_SIZE = 224

#: The copy head shipped with d2lv (``descriptor.head: shipped``): made by ``bash scripts/train-head.sh`` from
#: the training photos (UKBench, BSDS500 train) given to scripts/train-*.sh and synthetic graphics only.
SHIPPED_HEAD = Path(__file__).with_name("weights") / "copy_head.pt"

#: The ISC 2021 descriptor set (:data:`d2lv.descriptor.store.SETS`) each input set is stored as.
ISC_SET = {"queries": "query", "calibration": "query", "references": "reference", "background": "reference",
           "calibration_near": "reference"}


@dataclass(frozen=True)
class DescriptorStageParams(Options):
    """Whether the workflow runs the global branch, and on what (read by the workflow, not a subcommand)."""

    section: ClassVar[str] = "descriptor"
    enabled: bool = option(True, "run the global branch (CNN descriptors, faiss top-k search, local verification "
                           "of its candidates)")
    train: bool = option(False, "fine-tune the descriptor on the references first (`d2lv train-descriptor`)")
    background: str = option("", "folder of non-reference photos by which each query's similarities are "
                             "normalised (SSCD's similarity normalisation); \"\" turns it off")


@dataclass(frozen=True)
class BackboneParams(Options):
    """The descriptor network and where it runs."""

    section: ClassVar[str] = "descriptor"
    backbone: str = option(DEFAULT_BACKBONE, "timm architecture name, or torchscript (descriptor-extract only: "
                           "a model that pools and projects itself)")
    image_size: int = option(DEFAULT_IMAGE_SIZE, "images are resized (not cropped) to this square (0: the "
                             "checkpoint's own)", minimum=0)
    device: str = option("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)


@dataclass(frozen=True)
class CheckpointParams(Options):
    """The descriptor network's weights."""

    section: ClassVar[str] = "descriptor"
    checkpoint: str = option("", "weights file: timm/EsViT state dict, TorchScript, or a train-descriptor "
                             "checkpoint; empty: the offline ImageNet weights")


@dataclass(frozen=True)
class HeadParams(Options):
    """The copy head on the backbone's pooled features."""

    section: ClassVar[str] = "descriptor"
    head: str = option("", "projection trained for copies on the frozen ImageNet backbone (d2lv train-head): "
                       "shipped (d2lv's), a head .pt, or empty: none (plain GeM)")

    def head_file(self) -> Path | None:
        """The head file to load, None for none."""
        if not self.head:
            return None
        return SHIPPED_HEAD if self.head == "shipped" else Path(self.head)


@dataclass(frozen=True)
class TrainParams(Options):
    """Contrastive fine-tuning."""

    section: ClassVar[str] = "descriptor"
    dim: int = option(256, "size of the learned projection", key="descriptor.train_dim", minimum=1)
    steps: int = option(2000, "optimiser steps", key="descriptor.train_steps", minimum=1)
    batch_size: int = option(64, "images per step (two edited views each)", key="descriptor.train_batch_size",
                             minimum=2)
    lr: float = option(1e-4, "learning rate", key="descriptor.train_lr", exclusive_minimum=0)


@dataclass(frozen=True)
class RegionParams(Options):
    """Query regions (query sets only)."""

    section: ClassVar[str] = "descriptor"
    regions: int = option(0, "also describe each query at every view (its whole image, each crop) and the n x n "
                          "cells of a grid over it; each reference keeps its best region (0: only the first crop, "
                          "or the whole query)", minimum=0)


@dataclass(frozen=True)
class WhiteningParams(Options):
    """PCA whitening."""

    section: ClassVar[str] = "descriptor"
    dim: int = option(256, "output dimensions", minimum=1)
    shrinkage: float = option(0.1, "regulariser relative to the mean eigenvalue: keeps low-variance "
                              "directions from exploding", minimum=0)


@dataclass(frozen=True)
class SearchParams(Options):
    """Global candidates."""

    section: ClassVar[str] = "descriptor"
    topk: int = option(5, "references kept per query", minimum=1)


@dataclass(frozen=True)
class BackgroundParams(Options):
    """Background normalisation (with --background)."""

    section: ClassVar[str] = "descriptor"
    background_k: int = option(1, "use the k-th nearest background image", minimum=1)
    background_beta: float = option(1.0, "weight of the background similarity")
