"""Subcommands of the global branch: CNN descriptors, their training, whitening, search and export.

``global-whitening``, ``global-search`` and ``global-export`` read and
write descriptor files only: they import neither torch nor timm, so they start in a fraction
of the time of ``global-extract`` and ``train-descriptor``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from d2lv.cli.common import Subparsers, add_command, add_threads
from d2lv.descriptor.params import (
    ISC_SET,
    BackboneParams,
    BackgroundParams,
    CheckpointParams,
    RegionParams,
    SearchParams,
    TrainParams,
    WhiteningParams,
)
from d2lv.io.images import DecodeParams


def _global_extract(args: argparse.Namespace) -> None:
    from d2lv.descriptor import extract, store
    from d2lv.io import manifest

    params = BackboneParams.from_args(args)
    usable = manifest.read_manifest(args.manifest)
    crops = manifest.read_manifest(args.crops) if args.crops else None
    primary = usable if crops is None else usable.assign(
        path=usable.id.map(crops.set_index("id").path).fillna(usable.path))
    model = extract.DescriptorModel(params.backbone, CheckpointParams.from_args(args).checkpoint or None,
                                    device=params.device, image_size=params.image_size or None,
                                    threads=args.threads)
    max_pixels = DecodeParams.from_args(args).max_pixels
    describe = functools.partial(model.extract, batch_size=args.batch_size or None, progress=not args.quiet,
                                 max_pixels=max_pixels)
    grid = RegionParams.from_args(args).regions if ISC_SET[args.set] == "query" else 0
    regions = _describe_regions(describe, usable, primary, crops, grid, max_pixels, args.quiet) if grid else None
    store.write_descriptor_shard(args.out, ISC_SET[args.set], list(primary.id), describe(list(primary.path)),
                                 model.attrs, regions)


#: Queries whose grid cells are cut and described together (their cells are held in memory meanwhile).
REGION_CHUNK = 64


def _describe_regions(describe: Callable, usable: pd.DataFrame, primary: pd.DataFrame, crops: pd.DataFrame | None,
                      grid: int, max_pixels: int, quiet: bool) -> tuple[list[str], np.ndarray]:
    """Every view of the queries that their first descriptor is not of (the whole image of a cropped query, its
    further crops) and the cells of a ``grid x grid`` grid over each whole query (:mod:`d2lv.descriptor.regions`).
    """
    from tqdm import tqdm

    from d2lv.descriptor import regions
    from d2lv.io.images import load_image

    views = usable[usable.path != primary.path].assign(id=lambda f: f.id + "/whole")
    if crops is not None:
        views = pd.concat([views, crops[crops.id.str.contains("/", regex=False)]])
    ids, vectors = list(views.id), [describe(list(views.path))]
    for start in tqdm(range(0, len(usable), REGION_CHUNK), desc="query regions", unit="chunk", disable=quiet):
        chunk = usable.iloc[start:start + REGION_CHUNK]
        cells = [cell for row in chunk.itertuples()
                 for cell in regions.grid_regions(row.id, load_image(row.path, max_pixels), grid)]
        ids += [region_id for region_id, _ in cells]
        vectors.append(describe([image for _, image in cells]) if cells else vectors[0][:0])
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


def _global_whitening(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store, whitening

    params = WhiteningParams.from_args(args)
    _, vectors = store.read_descriptors(args.references, "reference")
    fitted = whitening.fit_whitening(vectors, params.dim, params.shrinkage)
    whitening.write_whitening(args.out, fitted, len(vectors))


def _global_search(args: argparse.Namespace) -> None:
    from d2lv.descriptor import search, store, whitening
    from d2lv.detect import views
    from d2lv.io import tables

    background = BackgroundParams.from_args(args)
    query_ids, queries = store.read_descriptors(args.queries, "query")
    region_ids, regions = store.read_regions(args.queries)
    if region_ids:  # search every region of a query: each reference keeps its best (rank_pairs below)
        query_ids, queries = query_ids + region_ids, np.concatenate([queries, regions])
    reference_ids, references = store.read_descriptors(args.references, "reference")
    _, background_set = store.read_descriptors(args.background, "reference") if args.background else ([], None)
    if args.whitening:
        fitted = whitening.read_whitening(args.whitening)
        queries, references = fitted.apply(queries), fitted.apply(references)
        background_set = fitted.apply(background_set) if background_set is not None else None
    topk = SearchParams.from_args(args).topk
    pairs = search.search(query_ids, queries, reference_ids, references, topk, progress=not args.quiet)
    if background_set is not None:
        offsets = search.kth_background_similarity(queries, background_set, background.background_k)
        pairs = search.normalise(pairs, query_ids, offsets, background.background_beta)
    if region_ids:
        pairs = search.rank_pairs(pairs.assign(query_id=pairs.query_id.map(views.query_of)), topk)
    tables.write_table(pairs, args.out, tables.SIMILARITY_PAIRS)


def _global_export(args: argparse.Namespace) -> None:
    from d2lv.descriptor import store, whitening

    fitted = whitening.read_whitening(args.whitening)
    store.combine_isc(args.out, args.queries, args.references, transform=fitted.apply)


def _add_extract(sub: Subparsers) -> None:
    p = add_command(sub, "global-extract", _global_extract, "global CNN descriptors (GeM) of a manifest's images")
    p.add_argument("manifest", help="manifest .parquet")
    p.add_argument("--set", choices=sorted(ISC_SET), required=True)
    p.add_argument("-o", "--out", required=True, help="descriptors .h5 (ISC layout, one set)")
    p.add_argument("--crops", help="crops manifest .parquet (d2lv detect): describe these crops instead of "
                   "the whole images they were cut from")
    p.add_argument("--batch-size", type=int, default=0, help="images per forward pass (0: 8 on CPU, 128 on CUDA)")
    add_threads(p, "torch")
    for group in (BackboneParams, CheckpointParams, RegionParams, DecodeParams):
        group.add_arguments(p)


def _add_train(sub: Subparsers) -> None:
    p = add_command(sub, "train-descriptor", _train_descriptor,
                    "contrastive fine-tuning of the global descriptor on the references (copy edits as positives)")
    p.add_argument("manifests", nargs="+", help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="checkpoint .pt (use it as global.checkpoint)")
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature")
    p.add_argument("--koleo-weight", type=float, default=30.0, help="uniformity (KoLeo) regulariser, as SSCD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader processes")
    add_threads(p, "torch")
    p.add_argument("--log-every", type=int, default=50, help="log the mean loss every so many steps (0: never)")
    for group in (BackboneParams, CheckpointParams, TrainParams, DecodeParams):
        group.add_arguments(p)


def _add_search(sub: Subparsers) -> None:
    p = add_command(sub, "global-search", _global_search, "nearest references of every query by cosine similarity")
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

    p = add_command(sub, "global-whitening", _global_whitening, "fit PCA whitening on reference descriptors")
    p.add_argument("references", nargs="+", help="reference descriptors .h5")
    p.add_argument("-o", "--out", required=True, help="whitening .h5")
    WhiteningParams.add_arguments(p)

    _add_search(sub)

    p = add_command(sub, "global-export", _global_export, "whitened descriptors of both sets in the ISC 2021 h5 layout")
    p.add_argument("--queries", nargs="+", required=True, help="query descriptors .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference descriptors .h5")
    p.add_argument("--whitening", required=True, help="whitening .h5")
    p.add_argument("-o", "--out", required=True, help="ISC descriptor .h5")
