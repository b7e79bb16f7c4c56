"""The ``evaluate`` subcommand: the ISC 2021 metrics of a matches CSV."""

from __future__ import annotations

import argparse
import json
import sys

from d2lv.cli.common import Subparsers, add_command

#: How many missing queries the warning names.
NAMED_MISSING = 10


def _evaluate(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.io import atomic, isc, manifest

    ground_truth = isc.read_ground_truth(args.ground_truth)
    query_ids = None
    if args.queries_manifests:
        query_ids = set(manifest.read_manifests(args.queries_manifests, usable_only=False).id)
        missing = metrics.missing_queries(ground_truth, query_ids)
        if missing:
            named = ", ".join(missing[:NAMED_MISSING]) + (", ..." if len(missing) > NAMED_MISSING else "")
            print(f"d2lv evaluate: warning: {len(missing)} of the {ground_truth.query_id.nunique()} ground-truth "
                  f"queries are not in the query set and are left out of the metrics: {named}", file=sys.stderr)
    result = metrics.evaluate(isc.read_isc_csv(args.matches), ground_truth, query_ids)
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
    p.add_argument("--queries-manifests", nargs="+", help="query manifests .parquet: ground-truth queries they do "
                   "not list are left out of the metrics, with a warning (without: every one counts)")
    p.add_argument("-o", "--out", help="metrics .json (default: print)")
