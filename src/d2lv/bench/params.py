"""Options of the benchmark's baselines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.device import DEVICES
from d2lv.options import Options, option


@dataclass(frozen=True)
class BaselineParams(Options):
    """The baselines' answers."""

    section: ClassVar[str] = "bench"
    topk: int = option(10, "candidates kept per query", minimum=1)


@dataclass(frozen=True)
class CnnBaselineParams(Options):
    """The ImageNet-CNN baseline's descriptors (options of `d2lv descriptor-extract`)."""

    section: ClassVar[str] = "bench"
    device: str = option("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICES)
    image_size: int = option(224, "images are resized (not cropped) to this square", minimum=32)
