"""Training the copy head on cached features (:mod:`d2lv.descriptor.head_cache`), and measuring it on held-out images.

Each step takes ``batch_size`` training images; each brings, at even odds, either its whole picture or
its two halves, with all their rows (anchor and edited views) as the positives of one another. The loss
is InfoNCE over the rows of the batch (:func:`d2lv.descriptor.train.info_nce`) plus SSCD's KoLeo
(:func:`d2lv.descriptor.train.koleo`): the two halves of a picture, always in the same batch, are each
other's hardest negatives. Seeded, so a run is reproducible; the backbone never runs, so a few thousand
steps take minutes on a CPU.

Validation holds out a share of the images (a seeded split in runs of :data:`SPLIT_RUN` consecutive
images: UKBench's four photos of one subject sit together and go to the same side) and measures, for
held-out anchors (as references) against held-out edited views (as queries), the recall@1 of the
ImageNet GeM descriptor d2lv uses without a head, of the multi-layer GeM the head reads, and of the head;
each also with the PCA whitening the workflow fits on the references (here: the anchors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from d2lv.descriptor.head import CopyHead
from d2lv.descriptor.head_cache import Cache
from d2lv.descriptor.params import WhiteningParams
from d2lv.descriptor.train import batch_plan, info_nce, koleo
from d2lv.descriptor.whitening import fit_whitening
from d2lv.errors import InputError

#: Held-out images come in runs of this many consecutive images.
SPLIT_RUN = 4
#: The held-out instances of a recall column: whole pictures (part 0), or halves (parts 1 and 2).
COLUMNS = {"pictures": [0], "halves": [1, 2]}


@dataclass(frozen=True)
class HeadSettings:
    """The head (see :class:`CopyHead`) and its training: ``batch_size`` images a step.

    The defaults won on the held-out images of d2lv's training photos (``scripts/train-head.sh``): a linear
    head beat a 512-unit MLP, and a few epochs over the cache (500 steps) beat longer runs, which learn
    the cached views by heart; a softer temperature than SSCD's (0.1, not 0.05) and input dropout kept
    the head's gain through the PCA whitening the workflow puts on top.
    """

    hidden: int = 0
    dim: int = 256
    dropout: float = 0.2
    steps: int = 500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    koleo_weight: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class HeadResult:
    """A trained head, its loss at every step, the held-out recall@1 (method -> column -> recall) and the
    seconds training took."""

    head: CopyHead
    losses: list[float]
    recall: dict[str, dict[str, float]]
    seconds: float


def split_images(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the held-out images: ``holdout`` of the runs of :data:`SPLIT_RUN`
    consecutive images (at least one run each side), drawn with ``seed``."""
    runs = np.arange(n) // SPLIT_RUN
    count = int(runs[-1]) + 1 if n else 0
    held_runs = round(holdout * count)
    if count < 2 or not 0 < held_runs < count:
        raise InputError(f"cannot hold out {holdout:.0%} of {n} images in runs of {SPLIT_RUN}: use more images "
                         "or another share")
    held = np.isin(runs, np.random.default_rng(seed).permutation(count)[:held_runs])
    return np.flatnonzero(~held), np.flatnonzero(held)


def batch_rows(features: np.ndarray, images: np.ndarray, halved: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``[N, dim]`` (float32) of ``images``' whole pictures, or of both halves where ``halved``, and
    the instance of each row."""
    whole, split = features[images[~halved], 0], features[images[halved], 1:]
    views = features.shape[2]
    rows = np.concatenate([whole.reshape(-1, features.shape[-1]), split.reshape(-1, features.shape[-1])])
    instances = np.arange(len(whole) + 2 * len(split)).repeat(views)
    return torch.from_numpy(rows.astype(np.float32)), torch.from_numpy(instances)


def train_head(features: np.ndarray, settings: HeadSettings, progress: bool = True) -> tuple[CopyHead, list[float]]:
    """A head trained on the cached ``features [images, PARTS, views, dim]`` (see the module's doc), in eval
    mode, and the loss of every step. ``batch_size`` is cut to the number of images."""
    if len(features) < 2:
        raise InputError(f"training a head needs at least 2 images, got {len(features)}")
    torch.manual_seed(settings.seed)
    head = CopyHead(features.shape[-1], settings.dim, settings.hidden, settings.dropout).train()
    optimiser = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.steps)
    plan = batch_plan(len(features), min(settings.batch_size, len(features)), settings.steps, settings.seed)
    losses = []
    for batch in tqdm(plan, desc="train head", unit="step", disable=not progress):
        images, seeds = (np.array(column) for column in zip(*batch))
        rows, instances = batch_rows(features, images, seeds % 2 == 1)  # the plan's seeds: whole or halves
        embeddings = torch.nn.functional.normalize(head(rows), dim=1)
        loss = info_nce(embeddings, instances, settings.temperature)
        if settings.koleo_weight:
            loss = loss + settings.koleo_weight * koleo(embeddings, instances)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return head.eval(), losses


@torch.no_grad()
def head_descriptors(head: CopyHead, features: np.ndarray) -> np.ndarray:
    """Unit descriptors ``float32 [n, out_dim]`` of pooled ``features [n, dim]``."""
    out = head.eval()(torch.from_numpy(np.asarray(features, np.float32)))
    return torch.nn.functional.normalize(out, dim=1).numpy()


def unit(x: np.ndarray) -> np.ndarray:
    """``x [n, d]`` as float32 rows of unit length."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def recall_at_1(anchors: np.ndarray, views: np.ndarray) -> float:
    """The share of ``views [m, k, d]`` whose most similar of ``anchors [m, d]`` (inner product) is their own."""
    similarity = views.reshape(-1, anchors.shape[1]) @ anchors.T
    return float((similarity.argmax(axis=1) == np.arange(len(anchors)).repeat(views.shape[1])).mean())


def recall_table(held: np.ndarray, head: CopyHead, last_dim: int) -> dict[str, dict[str, float]]:
    """Recall@1 of held-out features ``[images, PARTS, views, dim]`` by method and :data:`COLUMNS` (see the
    module's doc); ``last_dim``: the size of the last map's GeM, the features' last columns. The whitening
    is fitted on every held-out anchor (pictures and halves, as the workflow fits on all references), with
    the workflow's default size and shrinkage."""
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "ImageNet GeM": lambda x: unit(x[:, -last_dim:]),
        "multi-layer GeM": unit,
        "head": lambda x: head_descriptors(head, x),
    }
    defaults = WhiteningParams()
    table: dict[str, dict[str, float]] = {}
    for name, describe in methods.items():
        references = describe(held[:, :, 0].reshape(-1, held.shape[-1]))
        whitening = fit_whitening(references, min(defaults.dim, references.shape[1]), defaults.shrinkage)
        for column, parts in COLUMNS.items():
            instances = held[:, parts].reshape(-1, *held.shape[2:])
            anchors = describe(instances[:, 0])
            views = describe(instances[:, 1:].reshape(-1, held.shape[-1])).reshape(len(instances), -1,
                                                                                   anchors.shape[1])
            whitened = whitening.apply(views.reshape(-1, anchors.shape[1])).reshape(len(instances), -1,
                                                                                    whitening.dim)
            table.setdefault(name, {})[column] = recall_at_1(anchors, views)
            table.setdefault(f"{name} + PCA", {})[column] = recall_at_1(whitening.apply(anchors), whitened)
    return table


def fit_head(cache: Cache, settings: HeadSettings, holdout: float = 0.15, progress: bool = True) -> HeadResult:
    """Train a head on the cache's training images and measure it on the held-out ones (``holdout`` of them)."""
    training, held = split_images(len(cache.features), holdout, settings.seed)
    started = time.perf_counter()
    head, losses = train_head(cache.features[training], settings, progress)
    seconds = time.perf_counter() - started
    return HeadResult(head, losses, recall_table(cache.features[held], head, cache.last_dim), seconds)


def format_table(recall: dict[str, dict[str, float]]) -> str:
    """The recall table as aligned text, one method a line."""
    columns = list(COLUMNS)
    lines = [f"{'held-out recall@1':<22}" + "".join(f"{column:>10}" for column in columns)]
    lines += [f"{name:<22}" + "".join(f"{row[column]:>10.3f}" for column in columns) for name, row in recall.items()]
    return "\n".join(lines)
