"""Subcommands of the merge: ``fit-merge`` (the calibrated model) and ``matches`` (the ranked ISC matches)."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from d2lv.cli.common import Subparsers, add_command
from d2lv.merge.params import MODES, FitParams, MergeParams, OutputParams


def _merge_inputs(args: argparse.Namespace) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, set[str]]:
    """Every branch's candidates, the verification scores and the boxes, read (matches, fit-merge)."""
    from d2lv.io import tables
    from d2lv.merge import features

    return features.gather_branches(
        local=tables.read_tables(args.local, tables.PAIRS),
        crop=tables.read_tables(args.crop, tables.PAIRS) if args.crop else None,
        global_=tables.read_tables(args.global_, tables.SIMILARITY_PAIRS) if args.global_ else None,
        pdq=tables.read_tables(args.pdq, tables.PDQ_PAIRS) if args.pdq else None,
        scores=tables.read_tables(args.scores, tables.SCORES),
        boxes=tables.read_tables(args.boxes, tables.BOXES))


def _matches(args: argparse.Namespace) -> None:
    from d2lv.io import atomic, isc
    from d2lv.merge import features, scoring

    mode, keep = MergeParams.from_args(args).mode, OutputParams.from_args(args).max_results_per_query
    candidates, scores, cropped = _merge_inputs(args)
    model = scoring.load_model(args.model) if args.model else None
    pairs = features.assemble_matches(candidates, scores, mode, model, cropped)
    matches = pairs[pairs["rank"] <= keep]
    isc.write_isc_csv(matches, args.out)
    if args.parquet:
        with atomic.replacing(args.parquet) as partial:
            pairs.to_parquet(partial, index=False)
    print(f"{len(matches)} matches for {matches.query_id.nunique()} queries ({mode} merge)", file=sys.stderr)


def _fit_merge(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.io import isc
    from d2lv.merge import features, scoring

    candidates, scores, cropped = _merge_inputs(args)
    pairs = features.pair_features(candidates, scores, cropped)
    ground_truth = isc.read_ground_truth(args.ground_truth)
    if args.ignore:  # pairs that are neither copies nor clean negatives (a calibration copy's backdrop)
        pairs = pairs[~isc.is_positive(pairs, isc.read_ground_truth(args.ignore))].reset_index(drop=True)
    labels = isc.is_positive(pairs, ground_truth)
    model = scoring.fit_calibrated(pairs, labels, FitParams.from_args(args).regularisation)
    fit = {}
    for mode in MODES:
        scored = pairs[isc.KEYS].assign(score=scoring.merge_scores(pairs, mode, model))
        fit[mode] = metrics.evaluate(scored, ground_truth).to_dict()
    scoring.save_model(model, args.out, calibration_metrics=fit)
    print(f"fitted on {model.n_positive} copies and {model.n_negative} other candidates; calibration-set "
          f"micro-AP sum {fit['sum']['micro_ap']:.4f}, calibrated {fit['calibrated']['micro_ap']:.4f}",
          file=sys.stderr)


def _add_merge_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", required=True, nargs="+", help="local-branch candidates .parquet")
    p.add_argument("--crop", nargs="*", default=[], help="cropped-query local-branch candidates .parquet")
    p.add_argument("--global", dest="global_", nargs="*", default=[], help="global-branch candidates .parquet")
    p.add_argument("--pdq", nargs="*", default=[], help="hash-branch candidates .parquet")
    p.add_argument("--scores", required=True, nargs="+", help="verification scores .parquet, every view")
    p.add_argument("--boxes", nargs="*", default=[], help="detector boxes .parquet (which queries were cropped)")


def register(sub: Subparsers) -> None:
    p = add_command(sub, "matches", _matches, "join candidates and verified scores into the ranked ISC matches")
    _add_merge_inputs(p)
    p.add_argument("-o", "--out", required=True, help="matches .csv (query_id,reference_id,score)")
    p.add_argument("--parquet", help="also write every verified pair (not only the top ones), with all "
                   "per-branch columns and its rank, to this .parquet")
    p.add_argument("--model", help="merge model .json from `d2lv fit-merge`")
    MergeParams.add_arguments(p)
    OutputParams.add_arguments(p)

    p = add_command(sub, "fit-merge", _fit_merge,
                    "fit the calibrated merge on a calibration set's candidates (see make-calibration)")
    _add_merge_inputs(p)
    p.add_argument("--ground-truth", required=True, help="the calibration set's ground_truth.csv")
    p.add_argument("--ignore", help="CSV query_id,reference_id of pairs to leave out of the fit (the calibration "
                   "set's overlaps.csv: pairs that share pixels without being the copy)")
    p.add_argument("-o", "--out", required=True, help="merge model .json")
    FitParams.add_arguments(p)
