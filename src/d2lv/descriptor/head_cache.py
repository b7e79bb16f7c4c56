"""The training cache of the copy head: the frozen backbone's pooled features of edited views, in HDF5.

Each training image gives three instances: the whole picture and its two halves (:func:`halves`: the
two tiles of :func:`d2lv.io.images.tile_box`, no pixel in common), which are not copies of each other and so teach the
head that other parts of one picture are negatives. Each instance gives an anchor (the picture resized
whole, as a reference is described) and ``views`` edited copies (:func:`d2lv.descriptor.train.make_view`
with a copy edit drawn evenly from the caller's ``edits``; the descriptor package edits nothing itself).

The cache holds ``features`` float16 ``[images, 3, 1 + views, dim]`` (parts: whole, first half, second
half; rows: anchor, then the views) of :meth:`d2lv.descriptor.networks.PooledDescriptor.pool`, and how
many images are done: it is filled in order, a few images at a time, so an interrupted run continues
where it stopped (the views of image ``i`` come from seed ``(seed, i)``, whatever the run).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from d2lv.descriptor.extract import CPU_BATCH_SIZE, CUDA_BATCH_SIZE, resize_square
from d2lv.descriptor.head import HeadInput
from d2lv.descriptor.networks import PooledDescriptor, Preprocessing, load_backbone, normalisation
from d2lv.descriptor.train import CopyEdit, Normalise, make_view, shrink
from d2lv.device import resolve_device
from d2lv.errors import InputError
from d2lv.io.images import DEFAULT_MAX_PIXELS, load_image, tile_box

#: Instances per training image: the whole picture, its first half, its second half.
PARTS = 3
#: Images whose views are edited, described and written at a time.
CHUNK_IMAGES = 16


@dataclass(frozen=True)
class Drawn:
    """A training image that is drawn rather than read (a synthetic graphic); ``name`` identifies it."""

    name: str
    draw: Callable[[], Image.Image]


#: A training image: a photo file, or a drawn picture.
TrainingImage = Path | Drawn


def halves(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The two tiles of ``img`` (:func:`d2lv.io.images.tile_box`): two parts with no shared pixel."""
    first, second = (img.crop(tile_box(*img.size, part)) for part in (0, 1))
    return first, second


@dataclass(frozen=True)
class ViewMaker:
    """The views of training image ``index``: uint8 ``[PARTS, 1 + views, S, S, 3]`` (see the module's doc)."""

    images: Sequence[TrainingImage]
    image_size: int
    views: int
    edits: Sequence[CopyEdit]
    seed: int
    max_pixels: int = DEFAULT_MAX_PIXELS

    def load(self, index: int) -> Image.Image:
        image = self.images[index]
        img = image.draw() if isinstance(image, Drawn) else Image.fromarray(load_image(image, self.max_pixels))
        return shrink(img.convert("RGB"), self.image_size)

    def __call__(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        img = self.load(index)

        def backdrop() -> Image.Image:
            other = int(rng.integers(len(self.images) - 1))
            return self.load(other + (other >= index))  # any training image but this one

        return np.stack([self.instance(part, rng, backdrop) for part in (img, *halves(img))])

    def instance(self, img: Image.Image, rng: np.random.Generator,
                 backdrop: Callable[[], Image.Image]) -> np.ndarray:
        """The anchor and the edited views of one instance."""
        edited = [make_view(img, rng, self.image_size, self.edits[int(rng.integers(len(self.edits)))], backdrop)
                  for _ in range(self.views)]
        return np.stack([resize_square(np.asarray(img), self.image_size), *edited])


@dataclass(frozen=True)
class CacheSettings:
    """What the cached features depend on, besides the images and the edits."""

    backbone: str
    layer: str
    image_size: int
    views: int
    seed: int


def images_digest(images: Sequence[TrainingImage]) -> str:
    """A fingerprint of the training images' names, in order."""
    names = [image.name if isinstance(image, Drawn) else str(image) for image in images]
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


@torch.inference_mode()
def pooled_features(net: PooledDescriptor, normalise: Normalise, views: np.ndarray, batch_size: int) -> np.ndarray:
    """float16 ``[n, dim]`` pooled features of uint8 ``[n, S, S, 3]`` views, ``batch_size`` at a time."""
    out = []
    for start in range(0, len(views), batch_size):
        batch = torch.from_numpy(views[start:start + batch_size]).permute(0, 3, 1, 2).contiguous()
        out.append(net(normalise(batch[None])).float().cpu().numpy())  # Normalise takes [B, views, 3, S, S]
    return np.concatenate(out).astype(np.float16)


def _features(h5: h5py.File, identity: str, shape: tuple[int, ...], last_dim: int, path: Path) -> h5py.Dataset:
    """The cache's features dataset: new, or the one of an earlier run with the same ``identity``."""
    if "features" not in h5:
        h5.attrs["identity"], h5.attrs["done"], h5.attrs["last_dim"] = identity, 0, last_dim
        return h5.create_dataset("features", shape, np.float16, chunks=(1, *shape[1:]))
    if h5.attrs.get("identity") != identity or h5["features"].shape != shape:
        raise InputError(f"cache {path} holds features of other images or settings: delete it, or choose "
                         "another cache file")
    return h5["features"]


def build_cache(path: str | os.PathLike, images: Sequence[TrainingImage], edits: Sequence[CopyEdit],
                settings: CacheSettings, device: str | torch.device = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: bool = True) -> HeadInput:
    """Fill the cache at ``path`` with the pooled features of the views of ``images`` (continuing an
    interrupted run), and return what the features are of.

    Raises:
        InputError: fewer than two images, no edits, or ``path`` is the cache of other images or settings.
    """
    if len(images) < 2 or not edits:
        raise InputError(f"a head cache needs at least 2 images and an edit, got {len(images)} and {len(edits)}")
    path, device = Path(path), resolve_device(device)
    backbone = load_backbone(settings.backbone, device=device)
    net = PooledDescriptor(backbone, layer=settings.layer).eval()
    normalise = Normalise(Preprocessing(settings.image_size, *normalisation(settings.backbone, backbone)), device)
    source = HeadInput(settings.backbone, settings.layer, settings.image_size, net.gem_p)
    make = ViewMaker(images, settings.image_size, settings.views, edits, settings.seed, max_pixels)
    batch_size = CUDA_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE
    identity = json.dumps({**asdict(settings), "images": images_digest(images), "gem_p": net.gem_p})
    shape = (len(images), PARTS, 1 + settings.views, net.dim)
    with h5py.File(path, "a") as h5:
        features = _features(h5, identity, shape, int(backbone.num_features), path)
        done = int(h5.attrs["done"])
        with tqdm(total=len(images), initial=done, desc="head cache", unit="img", disable=not progress) as bar:
            for start in range(done, len(images), CHUNK_IMAGES):
                stop = min(start + CHUNK_IMAGES, len(images))
                views = np.stack([make(i) for i in range(start, stop)])
                features[start:stop] = pooled_features(net, normalise, views.reshape(-1, *views.shape[-3:]),
                                                       batch_size).reshape(stop - start, *shape[1:])
                h5.attrs["done"] = stop
                h5.flush()
                bar.update(stop - start)
    return source


@dataclass(frozen=True)
class Cache:
    """The features of a complete cache, float16 ``[images, PARTS, 1 + views, dim]``; their last ``last_dim``
    columns are the last feature map's (unit) GeM, the descriptor d2lv uses without a head."""

    features: np.ndarray
    last_dim: int


def read_cache(path: str | os.PathLike) -> Cache:
    """The features of the complete cache at ``path``."""
    with h5py.File(path, "r") as h5:
        if "features" not in h5 or int(h5.attrs["done"]) < len(h5["features"]):
            raise InputError(f"head cache {path} is incomplete: run the command that makes it again to finish it")
        return Cache(h5["features"][:], int(h5.attrs["last_dim"]))
