"""Subcommands that make labelled sets: the demo, a dev set, and the calibration set the merge is fitted on."""

from __future__ import annotations

import argparse
from pathlib import Path

from d2lv.cli.common import Subparsers, add_command
from d2lv.merge.params import CalibrationParams


def _make_calibration(args: argparse.Namespace) -> None:
    from d2lv.io import manifest
    from d2lv.synth import calibration

    params = CalibrationParams.from_args(args)
    references = manifest.read_manifests(args.manifests)
    calibration.make_calibration(list(references.path), Path(args.out), params.queries, seed=params.seed,
                                 progress=not args.quiet, near_share=params.near_duplicates,
                                 graphics_share=params.graphics)


def _demo(args: argparse.Namespace) -> None:
    from d2lv.synth import demo

    demo.make_demo(Path(args.out), seed=args.seed)


def _make_devset(args: argparse.Namespace) -> None:
    from d2lv.synth import devset

    devset.make_devset(Path(args.source), Path(args.out), n_references=args.references,
                       n_copies=args.copies, n_noncopies=args.noncopies, seed=args.seed)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "make-calibration", _make_calibration,
                    "labelled copies of the references (benchmark edit families) to fit the merge on")
    p.add_argument("manifests", nargs="+", help="reference manifests .parquet to draw sources and backdrops from")
    p.add_argument("-o", "--out", required=True, help="folder for queries/, near/, ground_truth.csv, categories.csv, "
                   "overlaps.csv")
    CalibrationParams.add_arguments(p)

    p = add_command(sub, "demo", _demo, "build the small demo set from photos shipped with scikit-image")
    p.add_argument("out", help="folder for queries/, references/, ground_truth.csv")
    p.add_argument("--seed", type=int, default=0)

    p = add_command(sub, "make-devset", _make_devset, "build a dev set of edited copies and non-copies from photos")
    p.add_argument("source", help="folder of photos, e.g. bsds500")
    p.add_argument("out", help="folder for queries/, references/, ground_truth.csv, categories.csv")
    p.add_argument("--references", type=int, default=300)
    p.add_argument("--copies", type=int, default=150)
    p.add_argument("--noncopies", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
