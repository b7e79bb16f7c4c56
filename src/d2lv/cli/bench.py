"""``d2lv bench``: build a DISC21-style benchmark, run the pipeline and the baselines on it, report."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from d2lv.bench.params import BaselineParams
from d2lv.cli.common import Subparsers, add_command, named
from d2lv.cli.manifest import INPUT_SETS
from d2lv.errors import D2lvError


def _bench_make(args: argparse.Namespace) -> None:
    from d2lv.synth import benchmark

    benchmark.make_bench([Path(s) for s in args.sources], Path(args.out), n_references=args.references,
                         n_copies=args.copies, n_noncopies=args.noncopies, n_hard_negatives=args.hard_negatives,
                         families=args.families, max_side=args.max_side, seed=args.seed, progress=not args.quiet,
                         training_photos=args.allow_training_photos)


def _bench_make_hard(args: argparse.Namespace) -> None:
    from d2lv.synth import hard_bench

    hard_bench.make_hard_bench([Path(s) for s in args.sources], Path(args.out), wallpapers=args.wallpapers,
                               n_references=args.references, n_copies=args.copies, n_noncopies=args.noncopies,
                               max_side=args.max_side, seed=args.seed, progress=not args.quiet,
                               training_photos=args.allow_training_photos)


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


def _bench_scale(args: argparse.Namespace) -> None:
    from d2lv.bench import scale
    from d2lv.io.images import find_images
    from d2lv.synth import distractors

    bench, out = Path(args.bench), Path(args.out)
    needed = max(args.references) - sum(1 for _ in (bench / "references").iterdir())
    if args.distractors:
        made = list(find_images(args.distractors))
    else:
        photos = [path for folder in args.distractor_photos for path in find_images(folder)]
        made = distractors.make_distractors(photos, out / "distractors", max(0, needed), seed=args.seed,
                                            workers=args.workers, progress=not args.quiet)
    table = scale.run_scale(bench, made, out, args.references, args.shard_size, args.cores, args.configfile)
    print(table.to_string(index=False), file=sys.stderr)


def _bench_images(args: argparse.Namespace) -> list[Path]:
    """The first ``--count`` query images (sorted by path), from a folder."""
    from d2lv.io.images import list_folder

    images = [Path(p) for p in list_folder(args.queries).images][:args.count]
    if not images:
        raise D2lvError(f"no images in {args.queries}")
    return images


def _bench_query(args: argparse.Namespace) -> None:
    from d2lv.bench import serving

    result = serving.bench_query(args.collection, _bench_images(args), progress=not args.quiet)
    print(serving.write_results(args.out, "query", result).read_text(), file=sys.stderr)


def _bench_serve(args: argparse.Namespace) -> None:
    from d2lv.bench import serving

    result = serving.bench_serve(args.collection, _bench_images(args), args.clients, args.requests,
                                 args.memory_at, args.workers, progress=not args.quiet)
    print(serving.write_results(args.out, "serve", result).read_text(), file=sys.stderr)


def _bench_pdq_match(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.pdq import hashes

    pairs = hashes.match(hashes.read_hashes(args.queries), hashes.read_hashes(args.references),
                         BaselineParams.from_args(args).topk, progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.PDQ_PAIRS)


def _systems(args: argparse.Namespace) -> list:
    """The ``--system``, ``--stages`` and ``--storage`` arguments as :class:`d2lv.bench.systems.System`."""
    from d2lv.bench import systems

    names = [name for name, _ in named(args.system)]
    stages, storage = dict(named(args.stages)), dict(named(args.storage))
    unknown = (set(stages) | set(storage) | ({args.baseline} - {None})) - set(names)
    if unknown:
        raise D2lvError(f"--stages/--storage/--baseline name systems not given with --system: {sorted(unknown)}")
    return [
        systems.System(name, systems.read_predictions(spec), tuple(filter(None, stages.get(name, "").split(","))),
                       tuple(filter(None, storage.get(name, "").split(","))), baseline=name == args.baseline)
        for name, spec in named(args.system)
    ]


def _bench_report(args: argparse.Namespace) -> None:
    import dataclasses

    from d2lv.bench import markdown, systems
    from d2lv.evaluation import metrics
    from d2lv.io import isc, manifest, tables

    n_images = {name: sum(len(manifest.read_manifest(p)) for p in getattr(args, f"{name}_manifests"))
                for name in INPUT_SETS}
    categories = isc.read_id_csv(args.categories) if args.categories else None
    result = systems.evaluate_systems(_systems(args), isc.read_ground_truth(args.ground_truth), categories,
                                      systems.read_stage_timings(args.benchmarks), n_images)
    if args.boxes and categories is not None:
        boxes = tables.read_tables(args.boxes, tables.BOXES)
        result = dataclasses.replace(result, detector=metrics.detector_recall(boxes, categories))
    markdown.write_report(result, args.out, n_images)
    print(result.table.to_string(index=False), file=sys.stderr)


def _add_make(steps: Subparsers) -> None:
    p = add_command(steps, "make", _bench_make, "build a DISC21-style benchmark folder from real photos")
    p.add_argument("sources", nargs="+", help="folders of photos (UKBench-named files give hard negatives; "
                   "without them, the other half of a reference's photo does)")
    p.add_argument("-o", "--out", required=True, help="folder for queries/, references/, ground_truth.csv, "
                   "categories.csv")
    p.add_argument("--references", type=int, default=1000)
    p.add_argument("--copies", type=int, default=1000, help="edited copies of distinct references")
    p.add_argument("--noncopies", type=int, default=1000, help="edited photos that are not references")
    p.add_argument("--hard-negatives", type=int, default=None,
                   help="other photos of a reference's object group, or the other half of its photo "
                        "(default: up to noncopies / 5)")
    p.add_argument("--families", nargs="+", default=None, help="recipe families (default: all)")
    _add_image_options(p)


def _add_image_options(p: argparse.ArgumentParser) -> None:
    """``--max-side``, ``--seed`` and ``--allow-training-photos``, shared by the benchmark builders."""
    p.add_argument("--max-side", type=int, default=1024, help="cap the long side of every image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-training-photos", action="store_true",
                   help="keep photos of the training split (ukbench/, bsds500/train/), which the shipped "
                        "detector learnt from; they are left out by default, so that figures are results")


def _add_make_hard(steps: Subparsers) -> None:
    p = add_command(
        steps, "make-hard", _bench_make_hard, "build a hard benchmark: tiles of graphics and wallpapers, 14 edit "
        "families that DISC21 has few of",
        description="Build a hard copy-detection benchmark in `bench make`'s layout. References: tiles of "
        "procedural graphics (gradients, shapes, charts, text cards, UI mock-ups, paper) and wallpapers, and "
        "photos. Copies (a third of photos, the rest of tiles) are edited by 14 families in equal numbers: mild, "
        "tiny, jpeg_heavy, rotate, flip, tone, small_crop, small_paste, collage, screen_photo, stacked, "
        "heavy_text, meme_screenshot, paste_photo. Half the non-copies are hard negatives (the other tile of a "
        "copied tile's picture, no shared pixel), half photos and fresh graphics edited like the copies.")
    p.add_argument("sources", nargs="+", help="folders of photos, e.g. imagenet-sample bsds500/val bsds500/test")
    p.add_argument("-o", "--out", required=True, help="folder for queries/, references/, ground_truth.csv, "
                   "categories.csv")
    p.add_argument("--wallpapers", help="folder of wallpapers to cut into tiles besides the graphics (from "
                   "benchmarks/fetch-wallpapers.sh; keep it outside the repository); default: graphics only")
    p.add_argument("--references", type=int, default=1000)
    p.add_argument("--copies", type=int, default=700, help="edited copies of distinct references (14 families)")
    p.add_argument("--noncopies", type=int, default=700, help="hard negatives, and edited photos and graphics "
                   "that are not references (half each)")
    _add_image_options(p)


def _add_run(steps: Subparsers) -> None:
    p = add_command(steps, "run", _bench_run, "run the pipeline and the baselines on a benchmark folder (Snakemake)")
    p.add_argument("bench", help="folder from `d2lv bench make`")
    p.add_argument("-o", "--out", required=True, help="results folder; the report lands in OUT/bench/")
    p.add_argument("--cores", default="all", help="Snakemake --cores")
    p.add_argument("--config", nargs="*", default=[], help="extra KEY=VALUE Snakemake config overrides")
    p.add_argument("--configfile", nargs="*", default=[],
                   help="YAML files layered over config.yaml, for nested keys (e.g. benchmarks/disc1k.yaml)")


def _add_scale(steps: Subparsers) -> None:
    p = add_command(steps, "scale", _bench_scale, "accuracy and cost as the collection grows: one benchmark run "
                    "with its references plus distractors, at each collection size")
    p.add_argument("bench", help="benchmark folder (d2lv bench make): its queries, references and ground truth")
    p.add_argument("-o", "--out", required=True, help="folder for the distractors, each setting's run, and "
                   "scale.md, scale.parquet, scale.png")
    p.add_argument("--references", type=int, nargs="+", default=[1000, 5000, 20000],
                   help="collection sizes: the benchmark's references plus distractors up to each")
    sources = p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--distractor-photos", nargs="+", help="folders of photos no benchmark draws from (the "
                         "training split: ukbench/, bsds500/train/), made into collages (d2lv.synth.distractors)")
    sources.add_argument("--distractors", help="a folder of your own distractor images, used as they are")
    p.add_argument("--shard-size", type=int, default=2500, help="reference images per shard at every size")
    p.add_argument("--workers", type=int, default=2, help="processes drawing the distractors")
    p.add_argument("--cores", default="all", help="Snakemake --cores")
    p.add_argument("--configfile", nargs="*", default=[], help="YAML files layered over config.yaml")
    p.add_argument("--seed", type=int, default=0, help="seeds the distractors")


def _add_pdq(steps: Subparsers) -> None:
    p = add_command(steps, "pdq-match", _bench_pdq_match, "nearest references by Hamming distance (PDQ baseline)")
    p.add_argument("--queries", nargs="+", required=True, help="query hashes .h5")
    p.add_argument("--references", nargs="+", required=True, help="reference hashes .h5")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    BaselineParams.add_arguments(p)


def _add_report(steps: Subparsers) -> None:
    p = add_command(steps, "report", _bench_report, "score every system and write report.md, results.parquet, plots")
    p.add_argument("--system", action="append", required=True,
                   help="NAME=PREDICTIONS[#COLUMN]: a CSV/Parquet of query_id,reference_id,score (or COLUMN)")
    p.add_argument("--stages", action="append", default=[], help="NAME=rule,rule: workflow steps it runs")
    p.add_argument("--storage", action="append", default=[], help="NAME=file,file: its reference-side index")
    p.add_argument("--baseline", help="the system speed ratios are measured against")
    p.add_argument("--ground-truth", required=True, help="CSV query_id,reference_id")
    p.add_argument("--categories", help="CSV query_id,kind,recipe for recall@1 per recipe family")
    p.add_argument("--boxes", nargs="+", default=[], help="the detector's box tables of the queries .parquet: "
                   "box recall per family (needs --categories)")
    p.add_argument("--benchmarks", required=True, help="folder of Snakemake benchmark .tsv files")
    p.add_argument("--queries-manifests", nargs="+", required=True, help="query manifests .parquet")
    p.add_argument("--references-manifests", nargs="+", required=True, help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="report folder")


def _add_serving(steps: Subparsers) -> None:
    p = add_command(steps, "query", _bench_query, "one image's latency against a built collection (median, p95, "
                    "start-up), and whether its rows equal the run's matches.parquet")
    _add_collection_options(p)
    p = add_command(steps, "serve", _bench_serve, "d2lv serve under concurrent clients: errors, latency, and the "
                    "server's memory after many requests")
    _add_collection_options(p)
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--requests", type=int, default=50, help="requests per client")
    p.add_argument("--memory-at", type=int, nargs="*", default=[100, 1000],
                   help="request counts after which the server's RSS is read: requests go one at a time up to the "
                   "first, then the concurrent clients', then one at a time up to the others")
    p.add_argument("--workers", type=int, default=2, help="d2lv serve --workers")


def _add_collection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", required=True, metavar="OUT", help="results folder of a finished run")
    p.add_argument("--queries", required=True, help="folder of query images (the run's, for the comparison)")
    p.add_argument("--count", type=int, default=200, help="query images to use (the first, by path)")
    p.add_argument("-o", "--out", required=True, help="folder for query.json / serve.json")


def register(sub: Subparsers) -> None:
    bench = sub.add_parser("bench", help="benchmark: build a DISC21-style set, run every system, report",
                           description="Build a benchmark from real photos and compare d2lv with baselines "
                           "(`d2lv bench make`, then `d2lv bench run`).")
    steps = bench.add_subparsers(title="bench steps", metavar="STEP", required=True)
    for add in (_add_make, _add_make_hard, _add_run, _add_scale, _add_serving, _add_pdq, _add_report):
        add(steps)
