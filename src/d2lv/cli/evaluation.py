"""The ``evaluate`` subcommand: the ISC 2021 metrics of a matches CSV."""

from __future__ import annotations

import argparse
import json
import sys

from d2lv.cli.common import Subparsers, add_command

#: How many missing queries or references a warning names.
NAMED_MISSING = 10


def _warn_missing(missing: list[str], total: int, what: str) -> None:
    if missing:
        named = ", ".join(missing[:NAMED_MISSING]) + (", ..." if len(missing) > NAMED_MISSING else "")
        print(f"d2lv evaluate: warning: {len(missing)} of the {total} {what} are left out of the metrics: {named}",
              file=sys.stderr)


def _set_ids(manifests: list[str] | None) -> set[str] | None:
    from d2lv.io import manifest

    return set(manifest.read_manifests(manifests, usable_only=False).id) if manifests else None


def _evaluate(args: argparse.Namespace) -> None:
    from d2lv.evaluation import metrics
    from d2lv.io import atomic, isc

    ground_truth = isc.read_ground_truth(args.ground_truth)
    query_ids, reference_ids = _set_ids(args.queries_manifests), _set_ids(args.references_manifests)
    if query_ids is not None:
        _warn_missing(metrics.missing_queries(ground_truth, query_ids), ground_truth.query_id.nunique(),
                      "ground-truth queries are not in the query set and")
    if reference_ids is not None:
        named = ground_truth.reference_id[ground_truth.reference_id != ""].nunique()
        _warn_missing(metrics.missing_references(ground_truth, reference_ids), named,
                      "references the ground truth names are not in the reference set and their pairs")
    result = metrics.evaluate(isc.read_isc_csv(args.matches), ground_truth, query_ids, reference_ids)
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
    p.add_argument("--references-manifests", nargs="+", help="reference manifests .parquet: ground-truth pairs "
                   "whose reference they do not list are left out of the metrics, with a warning (without: every "
                   "one counts)")
    p.add_argument("-o", "--out", help="metrics .json (default: print)")
