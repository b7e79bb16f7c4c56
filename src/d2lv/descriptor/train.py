"""Contrastive fine-tuning of the global descriptor on the user's reference images (SSCD-style).

Each step takes ``batch_size`` different reference images and makes two independent
training copies of each (:func:`make_view`): a copy edit given by the caller (d2lv passes
:func:`d2lv.synth.families.random_copy_edit`: a random crop keeping 50-100% of the area, then
an edit family the benchmark queries are made with), a resize to the square network input (as
extraction squashes whole images), a horizontal flip (p=0.5) and a colour jitter
(p=0.8). The two copies of an image are positives, the other images of the batch
negatives: InfoNCE over the 2B descriptors (:func:`info_nce`), plus SSCD's KoLeo
entropy regulariser (:func:`koleo`), which spreads the descriptors of different
images over the sphere so that more of its volume separates them.

The network is a :class:`d2lv.descriptor.networks.PooledDescriptor` (backbone, GeM,
linear projection to ``dim``); the checkpoint written by
:func:`d2lv.descriptor.networks.save_trained` is what ``DescriptorModel(backbone,
checkpoint)`` and the workflow's ``descriptor.checkpoint`` load.

BatchNorm statistics stay frozen (those layers run in eval mode; their affine
weights still learn): fine-tuning batches are small and heavily edited, and
re-estimating the ImageNet statistics from them makes descriptors worse, not better.

All randomness of the views comes from per-image seeds drawn in the main process,
so runs are reproducible with ``seed`` on the CPU, whatever ``num_workers``.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from d2lv.descriptor.checkpoints import TORCHSCRIPT, packaged_checkpoint
from d2lv.descriptor.networks import (
    DEFAULT_BACKBONE,
    DEFAULT_IMAGE_SIZE,
    PooledDescriptor,
    Preprocessing,
    load_descriptor_net,
    save_trained,
)
from d2lv.device import resolve_device
from d2lv.errors import InputError
from d2lv.io.images import DEFAULT_MAX_PIXELS, load_image
from d2lv.io.manifest import read_manifests

DEFAULT_DIM = 256
#: SSCD's InfoNCE temperature and KoLeo weight (Pizzi et al., CVPR 2022).
DEFAULT_TEMPERATURE = 0.05
DEFAULT_KOLEO_WEIGHT = 30.0

#: The new projection starts from scratch, so it learns this many times faster than the backbone.
PROJECTION_LR_FACTOR = 10.0
#: Fraction of the steps over which the learning rate warms up linearly (then decays as a cosine).
WARMUP_FRACTION = 0.05


@dataclass(frozen=True)
class TrainResult:
    """What a training run did.

    Attributes:
        checkpoint: the file written.
        losses: training loss (InfoNCE + weighted KoLeo) of every step.
        probe_before, probe_after: InfoNCE of a fixed batch of views that training never sees (the
            same views both times) before and after training; a drop means the descriptors learnt
            to match copies.
        seconds: wall time of the training steps.
        images_per_second: reference images per second of training (each gives two views).
    """

    checkpoint: Path
    losses: list[float]
    probe_before: float
    probe_after: float
    seconds: float
    images_per_second: float


# --------------------------------------------------------------------------- views


def shrink(img: Image.Image, image_size: int) -> Image.Image:
    """``img`` scaled down (never up) to a long side of at most ``2 * image_size``: edits of big photos
    are then cheap, and a copy that keeps 15% of the area still has about ``image_size`` pixels a side."""
    if max(img.size) <= 2 * image_size:
        return img
    scale = 2 * image_size / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)


def colour_jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation by factors in 0.6-1.4, hue shifted by up to 0.05 of the circle."""
    img = TF.adjust_brightness(img, rng.uniform(0.6, 1.4))
    img = TF.adjust_contrast(img, rng.uniform(0.6, 1.4))
    img = TF.adjust_saturation(img, rng.uniform(0.6, 1.4))
    return TF.adjust_hue(img, rng.uniform(-0.05, 0.05))


#: A copy edit of a training photo: ``(photo, rng, backdrop) -> edited photo``, where ``backdrop()`` returns
#: another reference photo (for pastes); :func:`d2lv.synth.families.random_copy_edit` is the one d2lv uses.
CopyEdit = Callable[[Image.Image, np.random.Generator, Callable[[], Image.Image] | None], Image.Image]


def make_view(img: Image.Image, rng: np.random.Generator, image_size: int, copy_edit: CopyEdit,
              backdrop: Callable[[], Image.Image] | None = None) -> np.ndarray:
    """One training copy of the RGB photo ``img``: uint8 ``[image_size, image_size, 3]``."""
    view = copy_edit(img, rng, backdrop).resize((image_size, image_size), Image.BICUBIC)
    if rng.random() < 0.5:
        view = TF.hflip(view)
    if rng.random() < 0.8:
        view = colour_jitter(view, rng)
    return np.asarray(view.convert("RGB"))


class TwoViews(torch.utils.data.Dataset):
    """Item ``(index, seed)``: two views of reference ``index``, uint8 ``[2, 3, S, S]``, drawn from ``seed``."""

    def __init__(self, paths: Sequence[Path], image_size: int, copy_edit: CopyEdit,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.paths = list(paths)
        self.image_size = image_size
        self.copy_edit = copy_edit
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return shrink(Image.fromarray(load_image(self.paths[index], self.max_pixels)), self.image_size)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        rng = np.random.default_rng(seed)
        img = self.load(index)

        def backdrop() -> Image.Image:
            other = int(rng.integers(len(self.paths) - 1))
            return self.load(other + (other >= index))  # any reference but this one

        views = np.stack([make_view(img, rng, self.image_size, self.copy_edit, backdrop) for _ in range(2)])
        # contiguous: stacking permuted tensors would give channels-last batches in this process but not in
        # worker processes, and the convolutions (so the results) differ with the memory layout
        return torch.from_numpy(views).permute(0, 3, 1, 2).contiguous()


def batch_plan(n_images: int, batch_size: int, steps: int, seed: int) -> list[list[tuple[int, int]]]:
    """``steps`` batches of ``batch_size`` different images, as ``(index, view seed)`` items.

    Images come in epochs of random permutations; the remainder of an epoch that does not fill
    a batch is dropped, so that no image meets itself as a negative.
    """
    rng = np.random.default_rng(seed)
    per_epoch = n_images // batch_size
    plan = []
    for step in range(steps):
        if step % per_epoch == 0:
            order = rng.permutation(n_images)
        start = (step % per_epoch) * batch_size
        seeds = rng.integers(2**63, size=batch_size)
        plan.append([(int(i), int(s)) for i, s in zip(order[start:start + batch_size], seeds)])
    return plan


# --------------------------------------------------------------------------- losses


def info_nce(embeddings: torch.Tensor, instances: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
             ) -> torch.Tensor:
    """InfoNCE of unit vectors ``[N, d]``: each one should be nearer the other views of its instance
    (``instances[i]``) than every view of every other instance. Mean over anchors and positives."""
    similarity = embeddings @ embeddings.T / temperature
    itself = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    similarity = similarity.masked_fill(itself, float("-inf"))
    positive = (instances[:, None] == instances[None, :]) & ~itself
    log_probability = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    return -(log_probability.masked_fill(~positive, 0).sum(dim=1) / positive.sum(dim=1)).mean()


def koleo(embeddings: torch.Tensor, instances: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Kozachenko-Leonenko entropy regulariser of unit vectors ``[N, d]``: minus the mean log distance
    of each to its nearest neighbour of *another* instance. SSCD's "entropy" term; it also keeps
    the descriptors from collapsing into a small cap of the sphere."""
    squared = (2 - 2 * embeddings @ embeddings.T).clamp(min=eps)  # |a - b|^2 of unit vectors
    squared = squared.masked_fill(instances[:, None] == instances[None, :], float("inf"))
    return -0.5 * torch.log(squared.min(dim=1).values).mean()


# --------------------------------------------------------------------------- training


def manifest_paths(manifests: Iterable[str | os.PathLike]) -> list[Path]:
    """The usable images of manifest files, in order."""
    return [Path(p) for p in read_manifests(list(manifests)).path]


def freeze_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` in training mode but with its BatchNorm layers in eval mode (statistics frozen)."""
    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):  # BatchNorm1-3d, SyncBatchNorm, timm's
            module.eval()
    return net


def make_optimiser(net: PooledDescriptor, lr: float, steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (the projection :data:`PROJECTION_LR_FACTOR` times faster), linear warm-up, cosine decay."""
    groups = [{"params": net.backbone.parameters(), "lr": lr}]
    if net.projection is not None:
        groups.append({"params": net.projection.parameters(), "lr": lr * PROJECTION_LR_FACTOR})
    optimiser = torch.optim.AdamW(groups)
    warmup = max(1, round(WARMUP_FRACTION * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


class Normalise:
    """uint8 ``[B, 2, 3, S, S]`` views to a normalised float batch ``[2B, 3, S, S]`` on ``device``."""

    def __init__(self, preprocessing: Preprocessing, device: torch.device):
        self.device = device
        self.shift = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.scale = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        x = views.to(self.device, non_blocking=True).flatten(0, 1).float()
        x = (x - self.shift) / self.scale
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x


def view_instances(batch_size: int, device: torch.device) -> torch.Tensor:
    """Instance of each row of a flattened ``[B, 2, ...]`` batch: 0, 0, 1, 1, ..."""
    return torch.arange(batch_size, device=device).repeat_interleave(2)


@torch.no_grad()
def probe_loss(net: torch.nn.Module, normalise: Normalise, views: torch.Tensor, temperature: float) -> float:
    """InfoNCE of a fixed batch of views; leaves the network in eval mode."""
    embeddings = torch.nn.functional.normalize(net.eval()(normalise(views)).float(), dim=1)
    return float(info_nce(embeddings, view_instances(len(views), embeddings.device), temperature))


def train_descriptor(reference_paths: Sequence[str | os.PathLike], out: str | os.PathLike, copy_edit: CopyEdit,
                     backbone: str = DEFAULT_BACKBONE, checkpoint: str | os.PathLike | None = None,
                     dim: int = DEFAULT_DIM, steps: int = 2000, batch_size: int = 64, lr: float = 1e-4,
                     temperature: float = DEFAULT_TEMPERATURE, koleo_weight: float = DEFAULT_KOLEO_WEIGHT,
                     image_size: int = DEFAULT_IMAGE_SIZE, device: str | torch.device = "auto", seed: int = 0,
                     num_workers: int = 0, threads: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS,
                     progress: bool = True, log_every: int = 50) -> TrainResult:
    """Fine-tune ``backbone`` (weights from ``checkpoint``, default the packaged ones; a checkpoint of
    an earlier run continues it) with a projection to ``dim`` on views of ``reference_paths`` edited by
    ``copy_edit``, and save the result to ``out`` (:func:`d2lv.descriptor.networks.save_trained`).

    Args:
        steps, batch_size: optimiser steps of ``batch_size`` images (two views each); the batch is
            cut to the number of images when there are fewer.
        lr: AdamW learning rate of the backbone (the projection's is :data:`PROJECTION_LR_FACTOR` times
            higher), warmed up over the first :data:`WARMUP_FRACTION` of the steps, then cosine-decayed.
        temperature, koleo_weight: of the loss (see :func:`info_nce`, :func:`koleo`); 0 turns KoLeo off.
        device: "auto" (CUDA when present), "cpu" or "cuda"; CUDA trains with float16 autocast.
        num_workers: processes that load and edit images (0: in this process).
        threads: torch CPU threads (0: leave torch's default).
        log_every: every so many steps, write the mean loss and speed to stderr (0: never).

    Raises:
        ValueError: fewer than two images, or a TorchScript backbone (it cannot be saved in this format).
        CheckpointError: ``checkpoint`` is missing or does not fit ``backbone``.
        FloatingPointError: the loss became NaN or infinite (lower ``lr``).
    """
    paths = [Path(p) for p in reference_paths]
    batch_size = _checked_batch_size(paths, backbone, batch_size)
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    torch.manual_seed(seed)  # the new projection's initial weights
    net, loaded = load_descriptor_net(backbone, checkpoint, device, dim=dim)
    net.check_image_size(image_size)
    preprocessing = Preprocessing(image_size, loaded.mean, loaded.std)
    normalise = Normalise(preprocessing, device)
    dataset = TwoViews(paths, image_size, copy_edit, max_pixels)
    plan = batch_plan(len(paths), batch_size, steps, seed)
    # views of another seed than the plan's: a batch the network trains on would measure memorising
    probe = torch.stack([dataset[item] for item in batch_plan(len(paths), batch_size, 1, seed + 1)[0]])
    probe_before = probe_loss(net, normalise, probe, temperature)

    loader = torch.utils.data.DataLoader(dataset, batch_sampler=plan, num_workers=num_workers,
                                         pin_memory=device.type == "cuda")
    step_fn = _step_function(net, normalise, lr, steps, temperature, koleo_weight)
    losses, seconds = _run_steps(step_fn, loader, steps, batch_size, f"train {backbone}", progress, log_every)
    probe_after = probe_loss(net, normalise, probe, temperature)

    training = {"steps": steps, "batch_size": batch_size, "lr": lr, "temperature": temperature,
                "koleo_weight": koleo_weight, "seed": seed, "images": len(paths),
                "initial_checkpoint": str(checkpoint or packaged_checkpoint(backbone)),
                "probe_before": probe_before, "probe_after": probe_after}
    save_trained(out, net, backbone, preprocessing, training)
    return TrainResult(Path(out), losses, probe_before, probe_after, seconds, steps * batch_size / seconds)


def _checked_batch_size(paths: Sequence[Path], backbone: str, batch_size: int) -> int:
    """``batch_size``, cut to the number of images (with a warning to :func:`train_descriptor`'s caller)."""
    if len(paths) < 2:
        raise InputError(f"contrastive training needs at least 2 reference images, got {len(paths)}")
    if backbone == TORCHSCRIPT:
        raise InputError("a TorchScript model cannot be fine-tuned here; choose a timm backbone")
    if batch_size > len(paths):
        warnings.warn(f"batch_size {batch_size} cut to the {len(paths)} reference images", stacklevel=3)
        batch_size = len(paths)
    return batch_size


def _run_steps(step_fn: Callable[[torch.Tensor], float], loader: Iterable[torch.Tensor], steps: int,
               batch_size: int, desc: str, progress: bool, log_every: int) -> tuple[list[float], float]:
    """Every step of ``loader``: the losses, and the seconds they took. Logs to stderr every ``log_every``."""
    losses: list[float] = []
    started = time.perf_counter()
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        for step, views in enumerate(loader, start=1):
            losses.append(step_fn(views))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; lower the learning rate")
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
            if log_every and (step % log_every == 0 or step == steps):
                rate = step * batch_size / (time.perf_counter() - started)
                tqdm.write(f"step {step}/{steps}: loss {np.mean(losses[-log_every:]):.4f}, {rate:.1f} img/s",
                           file=sys.stderr)
    return losses, time.perf_counter() - started


def _step_function(net: PooledDescriptor, normalise: Normalise, lr: float, steps: int, temperature: float,
                   koleo_weight: float) -> Callable[[torch.Tensor], float]:
    """One optimiser step on a batch of views, returning its loss; float16 autocast on CUDA."""
    optimiser, schedule = make_optimiser(net, lr, steps)
    cuda = normalise.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    freeze_batchnorm(net)
    torch.backends.cudnn.benchmark = cuda  # every batch has the same shape

    def step(views: torch.Tensor) -> float:
        instances = view_instances(len(views), normalise.device)
        with torch.autocast(normalise.device.type, dtype=torch.float16, enabled=cuda):
            descriptors = net(normalise(views))
        embeddings = torch.nn.functional.normalize(descriptors.float(), dim=1)
        loss = info_nce(embeddings, instances, temperature)
        if koleo_weight:
            loss = loss + koleo_weight * koleo(embeddings, instances)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        schedule.step()
        return float(loss.detach())

    return step
