"""Global descriptors of images: one L2-normalised vector per image, searched by inner product.

Preprocessing resizes the *whole* image to ``image_size x image_size`` (aspect
ratio not kept, nothing cropped). Copy-detection queries are often crops,
paddings or aspect-ratio changes of a reference; a centre crop would throw
away the borders of the reference that a query crop may have kept, and a
padded query would lose more of its content than the reference. Squashing
keeps every pixel of both in view, and GeM over the feature map tolerates the
resulting stretch better than it tolerates missing content.

The networks and their weights are :mod:`d2lv.descriptor.networks`'; the vectors are
stored by :mod:`d2lv.descriptor.store` and searched by :mod:`d2lv.descriptor.search`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from d2lv.descriptor.checkpoints import CheckpointError, packaged_checkpoint
from d2lv.descriptor.networks import DEFAULT_BACKBONE, PooledDescriptor, load_descriptor_net
from d2lv.device import resolve_device
from d2lv.errors import InputError
from d2lv.io.images import DEFAULT_MAX_PIXELS, load_image

#: Default images per forward pass. Small on CPU: on 2 cores lite0 at 224 px ran at
#: ~60-180 img/s with batches of 4-8 and ~40-60 img/s with 32-64 (activations fall out of cache).
CPU_BATCH_SIZE = 8
CUDA_BATCH_SIZE = 128
#: Query images are described one per forward pass: batched convolutions sum in another order, so a
#: query's descriptor would differ in its last bits from the one ``d2lv query`` computes for it alone
#: (measured on CPU: batches of 8 and of 1 differ by up to 2e-7). On 2 cores it costs about 15%.
QUERY_BATCH_SIZE = 1

#: An image file, or an HxWx3 uint8 RGB array.
ImageSource = str | os.PathLike | np.ndarray


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

    ``name``, ``checkpoint``, ``head``: as :func:`load_descriptor_net` takes them. ``image_size``, ``gem_p``,
    ``mean``, ``std``: None keeps what the checkpoint records (:func:`save_trained`) or the
    backbone's defaults (224 px; GeM p=3, or 1 for transformers; the weights' normalisation).
    """

    def __init__(self, name: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                 device: str | torch.device = "auto", image_size: int | None = None,
                 gem_p: float | None = None, threads: int = 0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 head: str | os.PathLike | None = None):
        if threads > 0:
            torch.set_num_threads(threads)
        self.name = name
        self.checkpoint = str(checkpoint if checkpoint is not None else packaged_checkpoint(name))
        self.device = resolve_device(device)
        self.head = str(head) if head is not None else None
        self.net, preprocessing = load_descriptor_net(name, checkpoint, self.device, gem_p=gem_p, head=head)
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
        optional = {k: v for k, v in {"gem_p": self.gem_p, "head": self.head}.items() if v is not None}
        return {"backbone": self.name, "checkpoint": self.checkpoint, "dim": self.dim,
                "image_size": self.image_size, **optional, "mean": list(self.mean), "std": list(self.std),
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
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
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
