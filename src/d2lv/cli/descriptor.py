"""Subcommands of the global branch: CNN descriptors, their training (fine-tuning, copy head), whitening,
search and export.

``descriptor-whitening``, ``descriptor-whiten``, ``descriptor-gather``, ``descriptor-search`` and
``descriptor-export`` read and
write descriptor files only: they import neither torch nor timm, so they start in a fraction
of the time of ``descriptor-extract`` and ``train-descriptor``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from d2lv.cli.common import Subparsers, add_command, add_threads
from d2lv.descriptor.params import (
    ISC_SET,
    BackboneParams,
    BackgroundParams,
    CheckpointParams,
    HeadParams,
    RegionParams,
    SearchParams,
    TrainParams,
    WhiteningParams,
)
from d2lv.device import QUERY_TORCH_THREADS
from d2lv.io.images import DecodeParams


def _descriptor_extract(args: argparse.Namespace) -> None:
    from d2lv.descriptor import extract, store
    from d2lv.io import manifest

    params = BackboneParams.from_args(args)
    usable = manifest.read_manifest(args.manifest)
    crops = manifest.read_manifest(args.crops) if args.crops else None
    primary = usable if crops is None else usable.assign(
        path=usable.id.map(crops.set_index("id").path).fillna(usable.path))
    query_set = ISC_SET[args.set] == "query"
    model = extract.DescriptorModel(params.backbone, CheckpointParams.from_args(args).checkpoint or None,
                                    device=params.device, image_size=params.image_size or None,
                                    threads=QUERY_TORCH_THREADS if query_set else args.threads,
                                    head=HeadParams.from_args(args).head_file())
    max_pixels = DecodeParams.from_args(args).max_pixels
    batch_size = args.batch_size or (extract.QUERY_BATCH_SIZE if query_set else None)
    describe = functools.partial(model.extract, batch_size=batch_size, progress=not args.quiet,
                                 max_pixels=max_pixels)
    grid = RegionParams.from_args(args).regions if query_set else 0
    regions = _describe_regions(describe, usable, crops, grid, max_pixels, args.quiet) if grid else None
    store.write_descriptor_shard(args.out, ISC_SET[args.set], list(primary.id), describe(list(primary.path)),
                                 model.attrs, regions)


#: Queries whose regions are cut and described together (their images are held in memory meanwhile).
REGION_CHUNK = 64


def _describe_regions(describe: Callable, usable: pd.DataFrame, crops: pd.DataFrame | None, grid: int,
                      max_pixels: int, quiet: bool) -> tuple[list[str], np.ndarray]:
    """Every region of the queries (:func:`d2lv.descriptor.regions.region_views`): their views besides the
    one their first descriptor is of, and the cells of a ``grid x grid`` grid over each whole query."""
    from tqdm import tqdm

    from d2lv.descriptor import regions
    from d2lv.io import views
    from d2lv.io.images import load_image

    by_query: dict[str, list[tuple[str, str]]] = {}
    for crop in [] if crops is None else crops.itertuples():
        by_query.setdefault(views.query_of(crop.id), []).append((crop.id, crop.path))
    ids, vectors = [], [describe([])]
    for start in tqdm(range(0, len(usable), REGION_CHUNK), desc="query regions", unit="chunk", disable=quiet):
        found = []
        for row in usable.iloc[start:start + REGION_CHUNK].itertuples():
            query_crops = [(crop_id, load_image(path, max_pixels)) for crop_id, path in by_query.get(row.id, [])]
            found += regions.region_views(row.id, load_image(row.path, max_pixels), query_crops, grid)
        ids += [region_id for region_id, _ in found]
        vectors.append(describe([image for _, image in found]))
    return ids, np.concatenate(vectors)


def _train_descriptor(args: argparse.Namespace) -> None:
    from d2lv.descriptor import train
    from d2lv.synth.families import random_copy_edit

    model, training = BackboneParams.from_args(args), TrainParams.from_args(args)
    result = train.train_descriptor(
        train.manifest_paths(args.manifests), Path(args.out), random_copy_edit, backbone=model.backbone,
        checkpoint=CheckpointParams.from_args(args).checkpoint or None, dim=training.dim, steps=training.steps,
        batch_size=training.batch_size, lr=training.lr, temperature=args.temperature,
        koleo_weight=args.koleo_weight, image_size=model.image_size, device=model.device, seed=args.seed,
        num_workers=args.workers, threads=args.threads, max_pixels=DecodeParams.from_args(args).max_pixels,
        progress=not args.quiet, log_every=args.log_every)
    print(f"contrastive loss on a fixed probe batch: {result.probe_before:.3f} -> {result.probe_after:.3f}; "
          f"{result.images_per_second:.1f} images/s", file=sys.stderr)


def _copy_edits() -> list[Callable]:
    """The copy edits of the head's training views: d2lv's DISC21-style edits and the hard benchmark's
    families, each drawn half of the time."""
    from d2lv.synth.families import random_copy_edit
    from d2lv.synth.hard_families import HARD_FAMILIES, apply_hard_family

    def hard_copy_edit(img, rng, backdrop=None):
        family = list(HARD_FAMILIES)[int(rng.integers(len(HARD_FAMILIES)))]
        try:
            return apply_hard_family(family, img, rng, backdrop).image
        except ValueError:  # a family that cannot edit this picture (as random_copy_edit falls back)
            return random_copy_edit(img, rng, backdrop)

    return [random_copy_edit, hard_copy_edit]


def _graphics(count: int, seed: int) -> list:
    """``count`` synthetic graphics of every kind in turn, each drawn when the cache needs it."""
    from d2lv.descriptor.head_cache import Drawn
    from d2lv.synth.graphics import GRAPHIC_KINDS, draw_graphic

    def drawer(kind: str, i: int) -> Callable:
        return lambda: draw_graphic(kind, np.random.default_rng([seed, i, 1]))  # a stream apart from the views'

    kinds = [GRAPHIC_KINDS[i % len(GRAPHIC_KINDS)] for i in range(count)]
    return [Drawn(f"graphic {kind} {seed} {i}", drawer(kind, i)) for i, kind in enumerate(kinds)]


def _train_head(args: argparse.Namespace) -> None:
    import torch

    from d2lv.descriptor import head, head_cache, head_training, train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = BackboneParams.from_args(args)
    images = [*train.manifest_paths(args.manifests), *_graphics(args.graphics, args.seed)]
    cache = Path(args.cache or Path(args.out).with_suffix(".cache.h5"))
    settings = head_cache.CacheSettings(model.backbone, args.layer, model.image_size, args.views, args.seed)
    source = head_cache.build_cache(cache, images, _copy_edits(), settings, model.device,
                                    DecodeParams.from_args(args).max_pixels, progress=not args.quiet)
    training = head_training.HeadSettings(
        hidden=args.hidden, dim=args.dim, dropout=args.dropout, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, temperature=args.temperature, koleo_weight=args.koleo_weight,
        seed=args.seed)
    result = head_training.fit_head(head_cache.read_cache(cache), training, args.holdout, not args.quiet)
    head.save_head(args.out, result.head, source, {
        **asdict(training), "holdout": args.holdout, "images": len(images), "graphics": args.graphics,
        "views": args.views, "recall": result.recall, "seconds": result.seconds})
    print(f"{len(result.losses)} steps in {result.seconds:.0f} s, loss {result.losses[0]:.3f} -> "
          f"{result.losses[-1]:.3f}\n{head_training.format_table(result.recall)}", file=sys.stderr)


def _descriptor_whitening(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store, whitening

    params = WhiteningParams.from_args(args)
    _, vectors = store.read_descriptors(args.references, "reference")
    fitted = whitening.fit_whitening(vectors, params.dim, params.shrinkage)
    whitening.write_whitening(args.out, fitted, len(vectors))


def _descriptor_whiten(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store, whitening

    fitted = whitening.read_whitening(args.whitening)
    n = store.transform_shard(args.descriptors, args.out, fitted.apply)
    print(f"{n} descriptors whitened to {fitted.dim} dimensions", file=sys.stderr)


def _descriptor_gather(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store

    n = store.gather_set(args.shards, args.out, "reference")
    print(f"{n} reference descriptors gathered from {len(args.shards)} shards", file=sys.stderr)


def _descriptor_search(args: argparse.Namespace) -> None:
    from d2lv.descriptor import search, store, whitening
    from d2lv.io import tables

    query_ids, queries = store.read_descriptors(args.queries, "query")
    region_ids, regions = store.read_regions(args.queries)
    reference_ids, references = store.read_descriptors(args.references, "reference")
    _, background = store.read_descriptors(args.background, "reference") if args.background else ([], None)
    if args.whitening:
        fitted = whitening.read_whitening(args.whitening)
        queries, references = fitted.apply(queries), fitted.apply(references)
        regions = fitted.apply(regions) if region_ids else regions
        background = fitted.apply(background) if background is not None else None
    pairs = search.query_candidates(query_ids, queries, region_ids, regions, reference_ids, references,
                                    SearchParams.from_args(args).topk, background, BackgroundParams.from_args(args),
                                    progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.SIMILARITY_PAIRS)


def _descriptor_export(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store, whitening

    transform = whitening.read_whitening(args.whitening).apply if args.whitening else None
    store.combine_isc(args.out, args.queries, args.references, transform=transform)


def _add_extract(sub: Subparsers) -> None:
    p = add_command(sub, "descriptor-extract", _descriptor_extract,
                    "global CNN descriptors (GeM) of a manifest's images")
    p.add_argument("manifest", help="manifest .parquet")
    p.add_argument("--set", choices=sorted(ISC_SET), required=True)
    p.add_argument("-o", "--out", required=True, help="descriptors .h5 (ISC layout, one set)")
    p.add_argument("--crops", help="crops manifest .parquet (d2lv detect): describe these crops instead of "
                   "the whole images they were cut from")
    p.add_argument("--batch-size", type=int, default=0, help="images per forward pass (0: one for a query set, so "
                   "that a query's descriptor is the one `d2lv query` computes for it alone; 8 on CPU, 128 on CUDA "
                   "for references)")
    add_threads(p, "torch")
    for group in (BackboneParams, CheckpointParams, HeadParams, RegionParams, DecodeParams):
        group.add_arguments(p)


def _add_train(sub: Subparsers) -> None:
    p = add_command(sub, "train-descriptor", _train_descriptor,
                    "contrastive fine-tuning of the global descriptor on the references (copy edits as positives)")
    p.add_argument("manifests", nargs="+", help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="checkpoint .pt (use it as descriptor.checkpoint)")
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature")
    p.add_argument("--koleo-weight", type=float, default=30.0, help="uniformity (KoLeo) regulariser, as SSCD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader processes")
    add_threads(p, "torch")
    p.add_argument("--log-every", type=int, default=50, help="log the mean loss every so many steps (0: never)")
    for group in (BackboneParams, CheckpointParams, TrainParams, DecodeParams):
        group.add_arguments(p)


def _add_train_head(sub: Subparsers) -> None:
    p = add_command(sub, "train-head", _train_head,
                    "train a copy head on the frozen backbone's cached features of edited views (descriptor.head)")
    p.add_argument("manifests", nargs="+", help="manifests .parquet of the training photos")
    p.add_argument("-o", "--out", required=True, help="head .pt (use it as descriptor.head)")
    p.add_argument("--cache", help="features cache .h5, continued when it exists (default: OUT with .cache.h5)")
    p.add_argument("--graphics", type=int, default=300, help="synthetic graphics added to the photos")
    p.add_argument("--views", type=int, default=3, help="edited views of each picture and of each of its halves")
    p.add_argument("--layer", default="blocks.5", help="intermediate block pooled with the last feature map")
    p.add_argument("--hidden", type=int, default=0, help="hidden units of the head (0: a single linear layer)")
    p.add_argument("--dim", type=int, default=256, help="descriptor size")
    p.add_argument("--dropout", type=float, default=0.2, help="share of the input features dropped in training")
    p.add_argument("--steps", type=int, default=500, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (cosine decay)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=0.1, help="InfoNCE temperature")
    p.add_argument("--koleo-weight", type=float, default=1.0, help="uniformity (KoLeo) regulariser")
    p.add_argument("--holdout", type=float, default=0.15, help="share of the images held out to measure recall@1")
    p.add_argument("--seed", type=int, default=0)
    add_threads(p, "torch")
    for group in (BackboneParams, DecodeParams):
        group.add_arguments(p)


def _add_search(sub: Subparsers) -> None:
    p = add_command(sub, "descriptor-search", _descriptor_search,
                    "nearest references of every query by cosine similarity")
    p.add_argument("--queries", nargs="+", required=True, help="query descriptors .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference descriptors .h5")
    p.add_argument("--whitening", help="whitening .h5 applied to both sides (default: raw descriptors)")
    p.add_argument("--background", nargs="*", default=[], help="background descriptors .h5: normalise each "
                   "query's similarities by its similarity to the background (SSCD)")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    SearchParams.add_arguments(p)
    BackgroundParams.add_arguments(p)


def register(sub: Subparsers) -> None:
    _add_extract(sub)
    _add_train(sub)
    _add_train_head(sub)

    p = add_command(sub, "descriptor-whitening", _descriptor_whitening, "fit PCA whitening on reference descriptors")
    p.add_argument("references", nargs="+", help="reference descriptors .h5")
    p.add_argument("-o", "--out", required=True, help="whitening .h5")
    WhiteningParams.add_arguments(p)

    p = add_command(sub, "descriptor-whiten", _descriptor_whiten,
                    "whiten one descriptor shard (and its regions) once, for every search and the export to read")
    p.add_argument("descriptors", help="descriptor shard .h5 (descriptor-extract)")
    p.add_argument("--whitening", required=True, help="whitening .h5 (descriptor-whitening)")
    p.add_argument("-o", "--out", required=True, help="whitened descriptor shard .h5")

    p = add_command(sub, "descriptor-gather", _descriptor_gather, "gather the reference shards' descriptors into "
                    "one file, which every search reads (one input for Snakemake, not one per shard)")
    p.add_argument("shards", nargs="+", help="reference descriptor shards .h5")
    p.add_argument("-o", "--out", required=True, help="descriptors .h5")

    _add_search(sub)

    p = add_command(sub, "descriptor-export", _descriptor_export,
                    "descriptors of both sets in the ISC 2021 h5 layout")
    p.add_argument("--queries", nargs="+", required=True, help="query descriptors .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference descriptors .h5")
    p.add_argument("--whitening", help="whitening .h5 applied to both sides (default: descriptors as they are, "
                   "e.g. whitened by descriptor-whiten)")
    p.add_argument("-o", "--out", required=True, help="ISC descriptor .h5")
