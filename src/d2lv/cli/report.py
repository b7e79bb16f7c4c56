"""The ``report-figures`` subcommand: the figures of Snakemake's HTML report."""

from __future__ import annotations

import argparse

from d2lv.cli.common import Subparsers, add_command
from d2lv.local.params import SiftParams, VerifyParams
from d2lv.merge.params import OutputParams
from d2lv.report.params import ReportParams


def _report_figures(args: argparse.Namespace) -> None:
    from d2lv.report import figures

    inputs = figures.read_inputs(args.matches, args.queries_manifests, args.references_manifests, args.boxes,
                                 args.ground_truth, args.categories, OutputParams.from_args(args).max_results_per_query)
    drawn = ReportParams.from_args(args)
    figures.write_report_figures(inputs, args.out, SiftParams.from_args(args), VerifyParams.from_args(args),
                                 top=drawn.top, near=drawn.near_threshold, progress=not args.quiet)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "report-figures", _report_figures, "metrics, precision-recall, recall per family and "
                    "matched pairs drawn side by side, for `snakemake --report`")
    p.add_argument("--matches", required=True, help="matches .parquet from `d2lv matches --parquet`")
    p.add_argument("--ground-truth", help="CSV query_id,reference_id (without it: counts and placeholders)")
    p.add_argument("--categories", help="CSV query_id,kind,recipe for recall@1 per recipe family")
    p.add_argument("--queries-manifests", nargs="+", required=True, help="query manifests .parquet")
    p.add_argument("--references-manifests", nargs="+", required=True, help="reference manifests .parquet")
    p.add_argument("--boxes", nargs="*", default=[], help="detector boxes .parquet (the local_crop view)")
    p.add_argument("-o", "--out", required=True, help="folder for metrics.csv, pr_curve.png, "
                   "recall_per_family.png and pairs/")
    OutputParams.add_arguments(p)
    ReportParams.add_arguments(p)
    SiftParams.add_arguments(p)
    VerifyParams.add_arguments(p)
