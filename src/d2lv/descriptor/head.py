"""The copy head: a small projection, trained for copies, on the frozen backbone's multi-layer pooled features.

ImageNet features say what a picture shows, not whether it is a copy: two tiles of one
wallpaper look the same to them, and a copy half covered by text, pasted small or put in a
collage does not. The head maps the pooled features of
:class:`d2lv.descriptor.networks.PooledDescriptor` (GeM of an intermediate block and of the last
map) to ``out_dim`` dimensions where edited copies lie near their original and other parts
of the same picture do not; it is trained on cached features (:mod:`d2lv.descriptor.head_training`),
so the backbone never needs a backward pass. The caller L2-normalises its output.

A head file (:func:`save_head`) is a ``torch.save`` dict: ``format`` (:data:`HEAD_FORMAT`),
``version`` (:data:`HEAD_VERSION`), the :class:`HeadInput` it was trained on (``backbone``,
``layer``, ``image_size``, ``gem_p``), ``in_dim``, ``hidden``, ``out_dim``, ``dropout``, ``state_dict`` and
``training`` (the settings and held-out results of the run: plain values only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from d2lv.descriptor.checkpoints import CheckpointError, read_checkpoint
from d2lv.io import atomic

HEAD_FORMAT = "d2lv-copy-head"
HEAD_VERSION = 1


class CopyHead(torch.nn.Module):
    """``in_dim`` -> ``out_dim``: one linear layer, or with ``hidden`` a two-layer MLP (Linear, BatchNorm, GELU,
    Linear). ``dropout`` drops input features in training: the cache holds a few views of each picture,
    and without it the head learns those views rather than the edits (held-out recall falls)."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        self.in_dim, self.out_dim, self.hidden, self.dropout = in_dim, out_dim, hidden, dropout
        if hidden:
            projection = [torch.nn.Linear(in_dim, hidden), torch.nn.BatchNorm1d(hidden), torch.nn.GELU(),
                          torch.nn.Linear(hidden, out_dim)]
        else:
            projection = [torch.nn.Linear(in_dim, out_dim)]
        self.layers = torch.nn.Sequential(torch.nn.Dropout(dropout), *projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass(frozen=True)
class HeadInput:
    """The pooled features a head was trained on: backbone (with its packaged weights), intermediate layer,
    square input size and GeM exponent."""

    backbone: str
    layer: str
    image_size: int
    gem_p: float


@dataclass(frozen=True)
class HeadFile:
    """A loaded head file: the head (eval mode, on the CPU), its input, and the training settings it records."""

    head: CopyHead
    input: HeadInput
    training: Mapping[str, object]


def save_head(path: str | os.PathLike, head: CopyHead, source: HeadInput,
              training: Mapping[str, object] | None = None) -> None:
    """Write ``head`` (whole or not at all, :mod:`d2lv.io.atomic`) with what it was trained on."""
    payload = {"format": HEAD_FORMAT, "version": HEAD_VERSION, **asdict(source), "in_dim": head.in_dim,
               "hidden": head.hidden, "out_dim": head.out_dim, "dropout": head.dropout,
               "training": dict(training or {}),
               "state_dict": {k: v.detach().float().cpu() for k, v in head.state_dict().items()}}
    with atomic.replacing(Path(path)) as partial:
        torch.save(payload, partial)


def load_head(path: str | os.PathLike) -> HeadFile:
    """Read a head file written by :func:`save_head`.

    Raises:
        CheckpointError: the file is missing or unreadable, is not a head file, is of another version, or
            its weights do not fit the sizes it records.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"copy head not found: {path} (config key descriptor.head)")
    loaded = read_checkpoint(path)
    if loaded.get("format") != HEAD_FORMAT:
        raise CheckpointError(f"{path} is not a d2lv copy head (format {loaded.get('format')!r}, not "
                              f"{HEAD_FORMAT!r}): make one with d2lv train-head")
    if loaded.get("version") != HEAD_VERSION:
        raise CheckpointError(f"copy head {path} has version {loaded.get('version')!r}; this d2lv reads "
                              f"version {HEAD_VERSION}")
    try:
        source = HeadInput(str(loaded["backbone"]), str(loaded["layer"]), int(loaded["image_size"]),
                           float(loaded["gem_p"]))
        head = CopyHead(int(loaded["in_dim"]), int(loaded["out_dim"]), int(loaded["hidden"]),
                        float(loaded["dropout"]))
        head.load_state_dict(loaded["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # RuntimeError: weights of other shapes
        raise CheckpointError(f"copy head {path} is incomplete or corrupt: {err!r}") from err
    return HeadFile(head.eval(), source, dict(loaded.get("training") or {}))
