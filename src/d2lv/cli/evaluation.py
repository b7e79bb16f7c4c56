"""The ``evaluate`` subcommand: the ISC 2021 metrics of a matches CSV."""

from __future__ import annotations

import argparse
import json

from d2lv.cli.common import Subparsers, add_command


def _evaluate(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.io import atomic, isc

    result = metrics.evaluate(isc.read_isc_csv(args.matches), isc.read_ground_truth(args.ground_truth))
    text = json.dumps(result.to_dict(), indent=2)
    if not args.out:
        print(text)
        return
    with atomic.replacing(args.out) as partial:
        partial.write_text(text + "\n")


def register(sub: Subparsers) -> None:
    p = add_command(sub, "evaluate", _evaluate, "micro-AP, recall at precision 0.9 and recall@1 against ground truth")
    p.add_argument("matches", help="ISC matches .csv")
    p.add_argument("--ground-truth", required=True, help="CSV query_id,reference_id (empty: not a copy)")
    p.add_argument("-o", "--out", help="metrics .json (default: print)")
