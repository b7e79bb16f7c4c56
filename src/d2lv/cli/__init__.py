"""The ``d2lv`` command line: one subcommand per pipeline step.

Each Snakemake rule calls exactly one of these, so every step can also be run
(and debugged) by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from d2lv import __version__

if TYPE_CHECKING:
    from d2lv.local.verify import VerifyParams

Handler = Callable[[argparse.Namespace], None]


def _manifest(args: argparse.Namespace) -> None:
    from d2lv.io import manifest, tables

    paths = manifest.shard_paths(args.root, args.shard, args.num_shards)
    frame = manifest.build_manifest(paths, args.max_pixels, progress=not args.quiet)
    tables.write_table(frame, args.out, tables.MANIFEST)
    skipped = (frame.status != "ok").sum()
    print(f"{len(frame)} images in shard {args.shard}/{args.num_shards}, {skipped} skipped", file=sys.stderr)


def _sift(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from d2lv.io import images, manifest
    from d2lv.local import sift, store

    usable = manifest.read_manifest(args.manifest)
    features = []
    for row in tqdm(usable.itertuples(index=False), total=len(usable), desc="sift", unit="img",
                    disable=args.quiet):
        gray = images.load_gray(row.path, args.max_pixels)
        keypoints, descriptors = sift.extract(gray, args.short_side, args.max_keypoints)
        features.append(store.ImageFeatures(row.id, row.width, row.height, keypoints, descriptors))
    store.write_store(args.out, features, {"short_side": args.short_side, "max_keypoints": args.max_keypoints,
                                           "rootsift_scale": sift.ROOTSIFT_SCALE})


def _local_index(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.local import recall as local
    from d2lv.local import store

    _set_threads(args.threads)
    references = store.FeatureStore(args.store)
    faiss.write_index(local.build_index(references, args.factory), str(args.out))


def _local_recall(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.io import tables
    from d2lv.local import recall as local
    from d2lv.local import store

    _set_threads(args.threads)
    params = local.RecallParams(knn=args.knn, max_distance=args.max_distance, topk=args.topk,
                                min_votes=args.min_votes, nprobe=args.nprobe)
    pairs = local.search_shard(faiss.read_index(str(args.index)), store.FeatureStore(args.references),
                               store.FeatureStore(args.queries), params, progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.PAIRS)


def _verify(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.local import store, verify

    params = _verify_params(args)
    pairs = tables.read_pair_keys(args.pairs)
    scores = verify.verify_pairs(pairs, store.FeatureStore(args.queries), store.FeatureStore(args.references),
                                 params, args.branch, progress=not args.quiet)
    tables.write_table(scores, args.out, tables.SCORES)


def _select(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.local import recall as local

    rule = local.SingleCandidateRule(args.single_min_votes, args.single_min_votes_alone,
                                     args.single_max_distance)
    pairs = tables.read_tables(args.pairs, tables.PAIRS)
    tables.write_table(local.select_candidates(pairs, args.topk, args.mode, rule), args.out, tables.PAIRS)


def _merge_inputs(args: argparse.Namespace) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, set[str]]:
    """Candidates per branch, verification scores, and the ids of cropped queries (matches, fit-merge)."""
    from d2lv.io import tables

    candidates = {"local": tables.read_tables(args.local, tables.PAIRS)}
    if args.crop:
        candidates["crop"] = tables.read_tables(args.crop, tables.PAIRS)
    if args.global_:
        candidates["global"] = tables.read_tables(args.global_, tables.SIMILARITY_PAIRS)
    boxes = tables.read_tables(args.boxes, tables.BOXES)
    return candidates, tables.read_tables(args.scores, tables.SCORES), set(boxes.query_id[boxes.cropped])


def _matches(args: argparse.Namespace) -> None:
    from d2lv.fusion import features as output
    from d2lv.fusion import merge

    candidates, scores, cropped = _merge_inputs(args)
    model = merge.load_model(args.model) if args.model else None
    pairs = output.assemble_matches(candidates, scores, args.mode, model, cropped)
    matches = pairs[pairs["rank"] <= args.max_results_per_query]
    output.write_isc_csv(matches, args.out)
    if args.parquet:
        pairs.to_parquet(args.parquet, index=False)
    print(f"{len(matches)} matches for {matches.query_id.nunique()} queries ({args.mode} merge)", file=sys.stderr)


def _fit_merge(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.fusion import features as output
    from d2lv.fusion import merge

    candidates, scores, cropped = _merge_inputs(args)
    pairs = output.pair_features(candidates, scores, cropped)
    ground_truth = metrics.read_ground_truth(args.ground_truth)
    if args.ignore:  # pairs that are neither copies nor clean negatives (a calibration copy's backdrop)
        pairs = pairs[~merge.label_pairs(pairs, metrics.read_ground_truth(args.ignore))].reset_index(drop=True)
    model = merge.fit_calibrated(pairs, merge.label_pairs(pairs, ground_truth), args.regularisation)
    fit = {}
    for mode in merge.MODES:
        scored = pairs[output.KEYS].assign(score=merge.merge_scores(pairs, mode, model))
        fit[mode] = metrics.evaluate(scored, ground_truth).to_dict()
    merge.save_model(model, args.out, calibration_metrics=fit)
    print(f"fitted on {model.n_positive} copies and {model.n_negative} other candidates; calibration-set "
          f"micro-AP sum {fit['sum']['micro_ap']:.4f}, calibrated {fit['calibrated']['micro_ap']:.4f}",
          file=sys.stderr)


def _make_calibration(args: argparse.Namespace) -> None:
    from d2lv.io import manifest
    from d2lv.synth import datasets

    references = manifest.read_manifests(args.manifests)
    datasets.make_calibration(list(references.path), Path(args.out), args.queries, seed=args.seed,
                              progress=not args.quiet)


def _skipped(args: argparse.Namespace) -> None:
    from d2lv.report import skipped

    frames = [skipped.collect(name, getattr(args, f"{name}_manifests"), getattr(args, f"{name}_features"),
                              args.min_keypoints) for name in ("queries", "references")]
    skipped.write_csv(pd.concat(frames, ignore_index=True), args.out)


def _evaluate(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.fusion import features as output

    result = metrics.evaluate(output.read_isc_csv(args.matches), metrics.read_ground_truth(args.ground_truth))
    text = json.dumps(result.to_dict(), indent=2)
    Path(args.out).write_text(text + "\n") if args.out else print(text)


def _demo(args: argparse.Namespace) -> None:
    from d2lv.synth import datasets

    datasets.make_demo(Path(args.out), seed=args.seed)


def _make_devset(args: argparse.Namespace) -> None:
    from d2lv.synth import datasets

    datasets.make_devset(Path(args.source), Path(args.out), n_references=args.references,
                         n_copies=args.copies, n_noncopies=args.noncopies, seed=args.seed)


def _global_extract(args: argparse.Namespace) -> None:
    from d2lv.descriptor import core as global_descriptors
    from d2lv.io import manifest

    usable = manifest.read_manifest(args.manifest)
    if args.crops:
        crops = manifest.read_manifest(args.crops).set_index("id").path
        usable = usable.assign(path=usable.id.map(crops).fillna(usable.path))
    model = global_descriptors.DescriptorModel(args.backbone, args.checkpoint or None, device=args.device,
                                               image_size=args.image_size or None, threads=args.threads)
    vectors = model.extract(list(usable.path), batch_size=args.batch_size or None, progress=not args.quiet,
                            max_pixels=args.max_pixels)
    global_descriptors.write_descriptor_shard(args.out, ISC_SET[args.set], list(usable.id), vectors, model.attrs)


def _train_descriptor(args: argparse.Namespace) -> None:
    from d2lv.descriptor import train

    result = train.train_descriptor(
        train.manifest_paths(args.manifests), Path(args.out), backbone=args.backbone,
        checkpoint=args.checkpoint or None, dim=args.dim, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        temperature=args.temperature, koleo_weight=args.koleo_weight, image_size=args.image_size,
        device=args.device, seed=args.seed, num_workers=args.workers, threads=args.threads,
        max_pixels=args.max_pixels, progress=not args.quiet, log_every=args.log_every)
    print(f"contrastive loss on a fixed probe batch: {result.probe_before:.3f} -> {result.probe_after:.3f}; "
          f"{result.images_per_second:.1f} images/s", file=sys.stderr)


def _global_whitening(args: argparse.Namespace) -> None:
    from d2lv.descriptor import core as global_descriptors
    from d2lv.descriptor import whitening

    _, vectors = global_descriptors.read_descriptors(args.references, "reference")
    fitted = whitening.fit_whitening(vectors, args.dim, args.shrinkage)
    whitening.write_whitening(args.out, fitted, len(vectors))


def _global_search(args: argparse.Namespace) -> None:
    from d2lv.descriptor import background, whitening
    from d2lv.descriptor import core as gd
    from d2lv.io import tables

    query_ids, queries = gd.read_descriptors(args.queries, "query")
    reference_ids, references = gd.read_descriptors(args.references, "reference")
    _, background_set = gd.read_descriptors(args.background, "reference") if args.background else ([], None)
    if args.whitening:
        fitted = whitening.read_whitening(args.whitening)
        queries, references = fitted.apply(queries), fitted.apply(references)
        background_set = fitted.apply(background_set) if background_set is not None else None
    pairs = gd.search(query_ids, queries, reference_ids, references, args.topk, progress=not args.quiet)
    if background_set is not None:
        offsets = background.kth_background_similarity(queries, background_set, args.background_k)
        pairs = background.normalise(pairs, query_ids, offsets, args.background_beta)
    tables.write_table(pairs, args.out, tables.SIMILARITY_PAIRS)


def _global_select(args: argparse.Namespace) -> None:
    from d2lv.descriptor import core as global_descriptors
    from d2lv.io import tables

    pairs = tables.read_tables(args.pairs, tables.SIMILARITY_PAIRS)
    tables.write_table(global_descriptors.rank_pairs(pairs, args.topk), args.out, tables.SIMILARITY_PAIRS)


def _global_export(args: argparse.Namespace) -> None:
    from d2lv.descriptor import core as global_descriptors
    from d2lv.descriptor import whitening

    fitted = whitening.read_whitening(args.whitening)
    global_descriptors.combine_isc(args.out, args.queries, args.references, transform=fitted.apply)


def _bench_make(args: argparse.Namespace) -> None:
    from d2lv.synth import datasets

    datasets.make_bench([Path(s) for s in args.sources], Path(args.out), n_references=args.references,
                        n_copies=args.copies, n_noncopies=args.noncopies, n_hard_negatives=args.hard_negatives,
                        families=args.families, max_side=args.max_side, seed=args.seed, progress=not args.quiet)


ISC_SET = {"queries": "query", "calibration": "query", "references": "reference", "background": "reference"}


def _bench_pdq_hash(args: argparse.Namespace) -> None:
    from d2lv.bench import pdq
    from d2lv.io import manifest

    hashes = pdq.hash_manifest(manifest.read_manifest(args.manifest), dihedral=args.set == "queries",
                               max_pixels=args.max_pixels, progress=not args.quiet)
    pdq.write_hashes(args.out, hashes, {"set": args.set})


def _bench_pdq_match(args: argparse.Namespace) -> None:
    from d2lv.bench import pdq
    from d2lv.io import tables

    pairs = pdq.match(pdq.read_hashes(args.queries), pdq.read_hashes(args.references), args.topk,
                      progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.PDQ_PAIRS)


def _bench_report(args: argparse.Namespace) -> None:
    from d2lv.bench import systems as bench
    from d2lv.evaluation import metrics
    from d2lv.io import manifest

    names = [name for name, _ in _named(args.system)]
    stages, storage = dict(_named(args.stages)), dict(_named(args.storage))
    systems = [
        bench.System(name, bench.read_predictions(spec), tuple(filter(None, stages.get(name, "").split(","))),
                     tuple(filter(None, storage.get(name, "").split(","))), baseline=name == args.baseline)
        for name, spec in _named(args.system)
    ]
    unknown = (set(stages) | set(storage) | ({args.baseline} - {None})) - set(names)
    if unknown:
        raise ValueError(f"--stages/--storage/--baseline name systems not given with --system: {sorted(unknown)}")
    n_images = {name: sum(len(manifest.read_manifest(p)) for p in getattr(args, f"{name}_manifests"))
                for name in ("queries", "references")}
    categories = pd.read_csv(args.categories, dtype=str, keep_default_na=False) if args.categories else None
    result = bench.evaluate_systems(systems, metrics.read_ground_truth(args.ground_truth), categories,
                                    bench.read_stage_timings(args.benchmarks), n_images)
    bench.write_report(result, args.out, n_images)
    print(result.table.to_string(index=False), file=sys.stderr)


def _bench_run(args: argparse.Namespace) -> None:
    from d2lv import workflow

    folder = Path(args.bench).resolve()
    command = workflow.snakemake_command(
        "bench", cores=args.cores, queries=folder / "queries", references=folder / "references",
        ground_truth=folder / "ground_truth.csv", categories=folder / "categories.csv",
        results=Path(args.out).resolve(), extra_config=args.config, configfiles=args.configfile)
    print(" ".join(map(str, command)), file=sys.stderr)
    status = subprocess.run(command, cwd=workflow.repository_root()).returncode
    if status:
        raise SystemExit(status)


def _report_figures(args: argparse.Namespace) -> None:
    from d2lv.report import figures as report

    inputs = report.read_inputs(args.matches, args.queries_manifests, args.references_manifests, args.boxes,
                                args.ground_truth, args.categories, args.max_results_per_query)
    params = _verify_params(args)
    report.write_report_figures(inputs, args.out, report.SiftParams(args.short_side, args.max_keypoints), params,
                                top=args.top, near=args.near_threshold, progress=not args.quiet)


def _train_detector(args: argparse.Namespace) -> None:
    from d2lv.detect import detector
    from d2lv.io import manifest

    references = manifest.read_manifests(args.manifests)
    if references.empty:
        raise ValueError(f"no usable reference images in {' '.join(args.manifests)}: nothing to train on")
    work_dir = Path(args.work_dir)
    data = detector.synthesise_training_set(list(references.path), work_dir / "training-set", args.images,
                                            args.seed, args.image_size, progress=not args.quiet)
    weights = detector.train_detector(data, args.out, args.epochs, args.image_size, args.batch, args.device,
                                      args.workers, args.seed, work_dir, progress=not args.quiet)
    print(f"detector weights {weights}: {args.epochs} epochs on {args.images} images synthesised from "
          f"{len(references)} references", file=sys.stderr)


def _detect(args: argparse.Namespace) -> None:
    from d2lv.detect import detector
    from d2lv.io import manifest, tables

    usable = manifest.read_manifest(args.manifest)
    boxes, crops = detector.detect(usable, args.weights, args.crops_dir, args.confidence, args.max_area,
                                   args.max_aspect, args.image_size, args.device, progress=not args.quiet,
                                   config_dir=args.config_dir or None)
    tables.write_table(boxes, args.out, tables.BOXES)
    tables.write_table(crops, args.crops_manifest, tables.MANIFEST)
    print(f"copy region found in {len(crops)} of {len(boxes)} queries", file=sys.stderr)


def _named(items: Sequence[str]) -> list[tuple[str, str]]:
    """Parse ``NAME=VALUE`` arguments."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def _set_threads(threads: int) -> None:
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)


def _add_verify_params(p: argparse.ArgumentParser) -> None:
    """The matching and geometry options of ``d2lv verify`` (report-figures redraws with the same)."""
    p.add_argument("--ratio", type=float, default=0.745, help="Lowe ratio: keep a match if d1 < ratio * d2")
    p.add_argument("--no-mirror", action="store_true", help="skip the mirrored (left-right flipped) pass")
    p.add_argument("--geometry", choices=["homography", "affine", "none"], default="homography",
                   help="transform fitted with MAGSAC++/RANSAC; none counts every ratio-test match")
    p.add_argument("--ransac-threshold", type=float, default=4.0, help="inlier threshold in pixels at the "
                   "SIFT extraction scale")


def _verify_params(args: argparse.Namespace) -> VerifyParams:
    """The options of :func:`_add_verify_params` (and ``--short-side``) as verification parameters."""
    from d2lv.local import verify

    return verify.VerifyParams(ratio=args.ratio, mirrored=not args.no_mirror, geometry=args.geometry,
                               ransac_threshold=args.ransac_threshold, short_side=args.short_side)


def _add_merge_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", required=True, nargs="+", help="local-branch candidates .parquet")
    p.add_argument("--crop", nargs="*", default=[], help="cropped-query local-branch candidates .parquet")
    p.add_argument("--global", dest="global_", nargs="*", default=[], help="global-branch candidates .parquet")
    p.add_argument("--scores", required=True, nargs="+", help="verification scores .parquet, every view")
    p.add_argument("--boxes", nargs="*", default=[], help="detector boxes .parquet (which queries were cropped)")


def _add(sub: argparse._SubParsersAction, name: str, handler: Handler, summary: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary, description=summary)
    parser.set_defaults(handler=handler)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2lv",
        description="Image copy detection: which queries are edited copies of which references. "
        "Each subcommand is one step of the Snakemake workflow; run `snakemake` at the repository root "
        "to run them all.",
    )
    parser.add_argument("--version", action="version", version=f"d2lv {__version__}")
    sub = parser.add_subparsers(title="steps", metavar="COMMAND", required=True)
    max_pixels = {"type": int, "default": 89_478_485, "help": "larger images are skipped as decompression bombs"}

    p = _add(sub, "manifest", _manifest, "scan a folder of images, decode each, write a Parquet manifest")
    p.add_argument("root", help="folder searched recursively for images")
    p.add_argument("-o", "--out", required=True, help="manifest .parquet")
    p.add_argument("--shard", type=int, default=0, help="keep only this shard (0-based)")
    p.add_argument("--num-shards", type=int, default=1, help="number of shards the folder is split into")
    p.add_argument("--max-pixels", **max_pixels)

    p = _add(sub, "sift", _sift, "extract RootSIFT keypoints of the usable images of a manifest into HDF5")
    p.add_argument("manifest", help="manifest .parquet from `d2lv manifest`")
    p.add_argument("-o", "--out", required=True, help="feature store .h5")
    p.add_argument("--short-side", type=int, default=300, help="downscale so the short side is at most this")
    p.add_argument("--max-keypoints", type=int, default=600, help="keep the strongest keypoints")
    p.add_argument("--max-pixels", **max_pixels)

    p = _add(sub, "local-index", _local_index, "build a faiss index over a reference shard's descriptors")
    p.add_argument("store", help="reference feature store .h5")
    p.add_argument("-o", "--out", required=True, help="faiss index file")
    p.add_argument("--factory", default="auto", help="faiss index factory string, or auto (Flat below 50k "
                   "descriptors, IVF above)")
    p.add_argument("--threads", type=int, default=0, help="OpenMP threads (0: faiss default)")

    p = _add(sub, "local-recall", _local_recall, "kNN-search query descriptors in a shard index, vote per reference")
    p.add_argument("--index", required=True, help="faiss index from `d2lv local-index`")
    p.add_argument("--references", required=True, help="the shard's feature store .h5")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    p.add_argument("--knn", type=int, default=3, help="neighbours per query descriptor")
    p.add_argument("--max-distance", type=float, default=0.2, help="squared L2 (RootSIFT) above which a "
                   "neighbour casts no vote")
    p.add_argument("--topk", type=int, default=20, help="references kept per query")
    p.add_argument("--min-votes", type=int, default=2, help="drop references with fewer votes")
    p.add_argument("--nprobe", type=int, default=16, help="IVF lists visited per search")
    p.add_argument("--threads", type=int, default=0, help="OpenMP threads (0: faiss default)")

    p = _add(sub, "verify", _verify, "score candidate pairs: ratio-test matches, mirrored pass, geometry")
    p.add_argument("--pairs", required=True, nargs="+", help="candidate pairs .parquet of any branch")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("--references", required=True, nargs="+", help="reference feature stores .h5")
    p.add_argument("-o", "--out", required=True, help="scores .parquet")
    p.add_argument("--branch", default="local", help="branch name written to the score table")
    _add_verify_params(p)
    p.add_argument("--short-side", type=int, default=300, help="the extraction short side (scales the threshold)")

    p = _add(sub, "select", _select, "gather per-shard pairs into each query's final candidates")
    p.add_argument("--pairs", required=True, nargs="+", help="per-shard pairs .parquet")
    p.add_argument("-o", "--out", required=True, help="candidates .parquet")
    p.add_argument("--topk", type=int, default=20, help="references kept per query (mode topk)")
    p.add_argument("--mode", choices=["topk", "single"], default="topk",
                   help="topk: best references by votes; single: the original method's one-candidate rule")
    p.add_argument("--single-min-votes", type=int, default=3, help="single: winner needs more votes than this")
    p.add_argument("--single-min-votes-alone", type=int, default=5, help="single: ... or than this if alone")
    p.add_argument("--single-max-distance", type=float, default=0.35, help="single: max mean squared L2")

    p = _add(sub, "global-extract", _global_extract, "global CNN descriptors (GeM) of a manifest's images")
    p.add_argument("manifest", help="manifest .parquet")
    p.add_argument("--set", choices=sorted(ISC_SET), required=True)
    p.add_argument("-o", "--out", required=True, help="descriptors .h5 (ISC layout, one set)")
    p.add_argument("--crops", help="crops manifest .parquet (d2lv detect): describe these crops instead of "
                   "the whole images they were cut from")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm architecture name, or torchscript")
    p.add_argument("--checkpoint", default="", help="weights file: timm/EsViT state dict, TorchScript, or a "
                   "train-descriptor checkpoint (default: the offline ImageNet weights)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--image-size", type=int, default=0, help="0: the checkpoint's own, else 224")
    p.add_argument("--batch-size", type=int, default=0, help="0: 8 on CPU, 128 on CUDA")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--max-pixels", type=int, default=89_478_485)

    p = _add(sub, "train-descriptor", _train_descriptor,
             "contrastive fine-tuning of the global descriptor on the references (copy edits as positives)")
    p.add_argument("manifests", nargs="+", help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="checkpoint .pt (use it as global.checkpoint)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm architecture name")
    p.add_argument("--checkpoint", default="", help="start from these weights (default: offline ImageNet)")
    p.add_argument("--dim", type=int, default=256, help="size of the learned projection")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (two edited views each)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature")
    p.add_argument("--koleo-weight", type=float, default=30.0, help="uniformity (KoLeo) regulariser, as SSCD")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader processes")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--max-pixels", type=int, default=89_478_485)
    p.add_argument("--log-every", type=int, default=50)

    p = _add(sub, "global-whitening", _global_whitening, "fit PCA whitening on reference descriptors")
    p.add_argument("references", nargs="+", help="reference descriptors .h5")
    p.add_argument("-o", "--out", required=True, help="whitening .h5")
    p.add_argument("--dim", type=int, default=256, help="output dimensions")
    p.add_argument("--shrinkage", type=float, default=0.1, help="keeps low-variance directions from exploding")

    p = _add(sub, "global-search", _global_search, "nearest references of every query by cosine similarity")
    p.add_argument("--queries", nargs="+", required=True, help="query descriptors .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference descriptors .h5")
    p.add_argument("--whitening", help="whitening .h5 applied to both sides (default: raw descriptors)")
    p.add_argument("--background", nargs="*", default=[], help="background descriptors .h5: normalise each "
                   "query's similarities by its similarity to the background (SSCD)")
    p.add_argument("--background-k", type=int, default=1, help="use the k-th nearest background image")
    p.add_argument("--background-beta", type=float, default=1.0, help="weight of the background similarity")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    p.add_argument("--topk", type=int, default=10)

    p = _add(sub, "global-select", _global_select, "gather per-shard global pairs into each query's top-k")
    p.add_argument("--pairs", nargs="+", required=True, help="per-shard global pairs .parquet")
    p.add_argument("-o", "--out", required=True, help="candidates .parquet")
    p.add_argument("--topk", type=int, default=10)

    p = _add(sub, "global-export", _global_export, "whitened descriptors of both sets in the ISC 2021 h5 layout")
    p.add_argument("--queries", nargs="+", required=True, help="query descriptors .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference descriptors .h5")
    p.add_argument("--whitening", required=True, help="whitening .h5")
    p.add_argument("-o", "--out", required=True, help="ISC descriptor .h5")

    p = _add(sub, "matches", _matches, "join candidates and verified scores into the ranked ISC matches")
    _add_merge_inputs(p)
    p.add_argument("-o", "--out", required=True, help="matches .csv (query_id,reference_id,score)")
    p.add_argument("--parquet", help="also write every verified pair (not only the top ones), with all "
                   "per-branch columns and its rank, to this .parquet")
    p.add_argument("--max-results-per-query", type=int, default=10)
    p.add_argument("--mode", choices=["calibrated", "sum"], default="sum",
                   help="calibrated: the fitted model's probability (needs --model); sum: the original "
                   "method's sum of verified counts")
    p.add_argument("--model", help="merge model .json from `d2lv fit-merge`")

    p = _add(sub, "fit-merge", _fit_merge,
             "fit the calibrated merge on a calibration set's candidates (see make-calibration)")
    _add_merge_inputs(p)
    p.add_argument("--ground-truth", required=True, help="the calibration set's ground_truth.csv")
    p.add_argument("--ignore", help="CSV query_id,reference_id of pairs to leave out of the fit (the calibration "
                   "set's backdrops.csv: references a copy was pasted onto)")
    p.add_argument("--regularisation", type=float, default=1.0, help="inverse L2 strength (scikit-learn's C)")
    p.add_argument("-o", "--out", required=True, help="merge model .json")

    p = _add(sub, "make-calibration", _make_calibration,
             "labelled copies of the references (benchmark edit families) to fit the merge on")
    p.add_argument("manifests", nargs="+", help="reference manifests .parquet to draw sources and backdrops from")
    p.add_argument("-o", "--out", required=True, help="folder for queries/, ground_truth.csv, categories.csv")
    p.add_argument("--queries", type=int, default=200, help="edited copies to make")
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "skipped", _skipped, "list inputs that were skipped, with the reason, as CSV")
    for name in ("queries", "references"):
        p.add_argument(f"--{name}-manifests", nargs="*", default=[], help=f"{name} manifests .parquet")
        p.add_argument(f"--{name}-features", nargs="*", default=[], help=f"{name} feature stores .h5")
    p.add_argument("--min-keypoints", type=int, default=10, help="report images with fewer local features")
    p.add_argument("-o", "--out", required=True, help="skipped .csv")

    p = _add(sub, "evaluate", _evaluate, "micro-AP, recall at precision 0.9 and recall@1 against ground truth")
    p.add_argument("matches", help="ISC matches .csv")
    p.add_argument("--ground-truth", required=True, help="CSV query_id,reference_id (empty: not a copy)")
    p.add_argument("-o", "--out", help="metrics .json (default: print)")

    p = _add(sub, "demo", _demo, "build the small demo set from photos shipped with scikit-image")
    p.add_argument("out", help="folder for queries/, references/, ground_truth.csv")
    p.add_argument("--seed", type=int, default=0)

    p = _add(sub, "make-devset", _make_devset, "build a dev set of edited copies and non-copies from photos")
    p.add_argument("source", help="folder of photos, e.g. ../shared/data/bsds500")
    p.add_argument("out", help="folder for queries/, references/, ground_truth.csv, categories.csv")
    p.add_argument("--references", type=int, default=300)
    p.add_argument("--copies", type=int, default=150)
    p.add_argument("--noncopies", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    _add_report(sub)
    _add_detector(sub)
    _add_bench(sub)
    return parser


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "report-figures", _report_figures, "metrics, precision-recall, recall per family and matched "
             "pairs drawn side by side, for `snakemake --report`")
    p.add_argument("--matches", required=True, help="matches .parquet from `d2lv matches --parquet`")
    p.add_argument("--max-results-per-query", type=int, default=0, help="keep each query's N best pairs, as in "
                   "matches.csv (0: every pair of the table)")
    p.add_argument("--ground-truth", help="CSV query_id,reference_id (without it: counts and placeholders)")
    p.add_argument("--categories", help="CSV query_id,kind,recipe for recall@1 per recipe family")
    p.add_argument("--queries-manifests", nargs="+", required=True, help="query manifests .parquet")
    p.add_argument("--references-manifests", nargs="+", required=True, help="reference manifests .parquet")
    p.add_argument("--boxes", nargs="*", default=[], help="detector boxes .parquet (the local_crop view)")
    p.add_argument("--short-side", type=int, default=300, help="SIFT: downscale so the short side is at most this")
    p.add_argument("--max-keypoints", type=int, default=600, help="SIFT: keep the strongest keypoints")
    _add_verify_params(p)
    p.add_argument("--top", type=int, default=8, help="draw the N best-scored pairs")
    p.add_argument("--near-threshold", type=int, default=8, help="draw the N pairs scored nearest the threshold "
                   "at precision 0.9 (without ground truth: the median best score)")
    p.add_argument("-o", "--out", required=True, help="folder for metrics.csv, pr_curve.png, "
                   "recall_per_family.png and pairs/")


def _add_detector(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "train-detector", _train_detector,
             "train the copy-region detector (YOLOv5u, from scratch, offline) on images synthesised from the "
             "references: photos pasted onto others, into screenshots, under meme captions or inside borders")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="weights .pt (use it as detect.weights)")
    p.add_argument("--work-dir", required=True, help="folder for the synthesised training set (training-set/), "
                   "the Ultralytics run (runs/detector/) and its settings (ultralytics-config/)")
    p.add_argument("--images", type=int, default=2000, help="training images to synthesise (10%% for validation)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--image-size", type=int, default=320, help="network input side; detect with the same")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seeds the synthesised set and the training")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")

    p = _add(sub, "detect", _detect, "find the copy region of every usable query of a manifest with the trained "
             "detector and write it as a lossless crop")
    p.add_argument("manifest", help="query manifest .parquet")
    p.add_argument("--weights", required=True, help="detector weights .pt from `d2lv train-detector` "
                   "(config key detect.weights)")
    p.add_argument("-o", "--out", required=True, help="boxes .parquet: one row per usable query")
    p.add_argument("--crops-manifest", required=True, help="manifest .parquet of the crops (ids of their queries)")
    p.add_argument("--crops-dir", required=True, help="folder for the crops, <query id>.png")
    p.add_argument("--confidence", type=float, default=0.25, help="ignore boxes less confident than this")
    p.add_argument("--max-area", type=float, default=0.85, help="ignore boxes covering more of the image than this")
    p.add_argument("--max-aspect", type=float, default=4.0, help="ignore boxes longer than this times their width "
                   "(either way)")
    p.add_argument("--image-size", type=int, default=320, help="network input side (the training one)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--config-dir", default="", help="folder for Ultralytics' settings (default: "
                   "ultralytics-config/ next to the crops folder)")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmark: build a DISC21-style set, run every system, report",
                           description="Build a benchmark from real photos and compare d2lv with baselines "
                           "(`d2lv bench make`, then `d2lv bench run`).")
    steps = bench.add_subparsers(title="bench steps", metavar="STEP", required=True)

    p = _add(steps, "make", _bench_make, "build a DISC21-style benchmark folder from real photos")
    p.add_argument("sources", nargs="+", help="folders of photos (UKBench-named files give hard negatives)")
    p.add_argument("-o", "--out", required=True, help="folder for queries/, references/, ground_truth.csv, "
                   "categories.csv")
    p.add_argument("--references", type=int, default=1000)
    p.add_argument("--copies", type=int, default=1000, help="edited copies of distinct references")
    p.add_argument("--noncopies", type=int, default=1000, help="edited photos that are not references")
    p.add_argument("--hard-negatives", type=int, default=None,
                   help="other photos of a reference's object group (default: up to noncopies / 5)")
    p.add_argument("--families", nargs="+", default=None, help="recipe families (default: all)")
    p.add_argument("--max-side", type=int, default=1024, help="cap the long side of every image")
    p.add_argument("--seed", type=int, default=0)

    p = _add(steps, "run", _bench_run, "run the pipeline and the baselines on a benchmark folder (Snakemake)")
    p.add_argument("bench", help="folder from `d2lv bench make`")
    p.add_argument("-o", "--out", required=True, help="results folder; the report lands in OUT/bench/")
    p.add_argument("--cores", default="all", help="Snakemake --cores")
    p.add_argument("--config", nargs="*", default=[], help="extra KEY=VALUE Snakemake config overrides")
    p.add_argument("--configfile", nargs="*", default=[],
                   help="YAML files layered over config.yaml, for nested keys (e.g. benchmarks/disc1k.yaml)")

    p = _add(steps, "pdq-hash", _bench_pdq_hash, "PDQ hashes of a manifest's images (queries: 8 dihedral variants)")
    p.add_argument("manifest", help="manifest .parquet")
    p.add_argument("--set", choices=["queries", "references"], required=True)
    p.add_argument("-o", "--out", required=True, help="hashes .h5")
    p.add_argument("--max-pixels", type=int, default=89_478_485)

    p = _add(steps, "pdq-match", _bench_pdq_match, "nearest references by Hamming distance (PDQ baseline)")
    p.add_argument("--queries", nargs="+", required=True, help="query hashes .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference hashes .h5")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    p.add_argument("--topk", type=int, default=10)

    p = _add(steps, "report", _bench_report, "score every system and write report.md, results.parquet, plots")
    p.add_argument("--system", action="append", required=True,
                   help="NAME=PREDICTIONS[#COLUMN]: a CSV/Parquet of query_id,reference_id,score (or COLUMN)")
    p.add_argument("--stages", action="append", default=[], help="NAME=rule,rule: workflow steps it runs")
    p.add_argument("--storage", action="append", default=[], help="NAME=file,file: its reference-side index")
    p.add_argument("--baseline", help="the system speed ratios are measured against")
    p.add_argument("--ground-truth", required=True, help="CSV query_id,reference_id")
    p.add_argument("--categories", help="CSV query_id,kind,recipe for recall@1 per recipe family")
    p.add_argument("--benchmarks", required=True, help="folder of Snakemake benchmark .tsv files")
    p.add_argument("--queries-manifests", nargs="+", required=True, help="query manifests .parquet")
    p.add_argument("--references-manifests", nargs="+", required=True, help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="report folder")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"d2lv {sys.argv[1] if len(sys.argv) > 1 else ''}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
