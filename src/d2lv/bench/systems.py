"""Benchmark report: every system's accuracy, speed and footprint on one benchmark, side by side.

A *system* is a table of ``query_id, reference_id, score`` predictions (a
baseline, one d2lv branch, or the full pipeline) plus the workflow rules
that produced it, whose Snakemake benchmark files give its time and memory.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from d2lv.errors import InputError
from d2lv.evaluation import metrics
from d2lv.io import isc


@dataclass(frozen=True)
class System:
    name: str
    predictions: pd.DataFrame  # query_id, reference_id, score
    stages: tuple[str, ...] = ()  # workflow rules whose cost this system pays
    storage: tuple[str, ...] = ()  # files holding its reference-side index
    baseline: bool = False


@dataclass
class BenchResult:
    table: pd.DataFrame  # one row per system
    families: pd.DataFrame  # recall@1 per system and recipe family
    curves: dict[str, metrics.PRCurve] = field(default_factory=dict)
    false_positives: pd.DataFrame | None = None  # the last system's best-scored non-copies
    misses: pd.DataFrame | None = None  # the copies the last system misses at rank 1 (metrics.missed_copies)
    detector: pd.DataFrame | None = None  # box recall per family (:func:`d2lv.evaluation.metrics.detector_recall`)


#: Predictions per query a system is scored on: its best by score.
MAX_PER_QUERY = 10


def read_predictions(spec: str, max_per_query: int = MAX_PER_QUERY) -> pd.DataFrame:
    """``PATH[#COLUMN[@PRESENT]]``: a CSV or Parquet file (or a glob pattern of Parquet files, e.g. the
    per-shard candidates of one branch), scored by ``score`` or by COLUMN, keeping only rows where
    column PRESENT has a value (e.g. the pairs one branch recalled), and each query's ``max_per_query``
    best rows by that score (as a system would submit)."""
    path, _, selector = spec.partition("#")
    column, _, present = selector.partition("@")
    column = column or "score"
    if path.endswith(".parquet"):
        files = sorted(glob.glob(path))
        if not files:
            raise InputError(f"{path}: no such file")
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    else:
        frame = isc.read_id_csv(path, numeric=[column])
    for name in filter(None, (column, present)):
        if name not in frame.columns:
            raise InputError(f"{path}: no column {name!r} (columns: {', '.join(frame.columns)})")
    if present:
        frame = frame[frame[present].notna()]
    scored = pd.DataFrame({"query_id": frame.query_id.astype(str), "reference_id": frame.reference_id.astype(str),
                           "score": frame[column].astype("float64")})
    scored = scored.sort_values(["query_id", "score"], ascending=[True, False], kind="stable")
    return scored.groupby("query_id", sort=False).head(max_per_query).reset_index(drop=True)


def read_stage_timings(benchmark_dir: str | os.PathLike) -> pd.DataFrame:
    """Seconds and peak RSS per workflow rule, from Snakemake ``benchmark:`` files.

    Files live at ``<dir>/<rule>.tsv`` or ``<dir>/<rule>/<wildcards…>.tsv``. A file two
    folders deep, ``<rule>/<set>/<shard>.tsv``, also counts towards ``<rule>/<set>`` (e.g.
    ``local_verify/queries_crops``: one query view's share of the rule).
    """
    rows = []
    root = Path(benchmark_dir)
    for path in sorted(root.rglob("*.tsv")):
        parts = path.relative_to(root).parts
        record = pd.read_csv(path, sep="\t").iloc[-1]
        cost = {"seconds": float(record["s"]), "max_rss_mb": _number(record.get("max_rss"))}
        rows.append({"rule": parts[0].removesuffix(".tsv"), **cost})
        if len(parts) >= 3:
            rows.append({"rule": f"{parts[0]}/{parts[1]}", **cost})
    if not rows:
        return pd.DataFrame(columns=["rule", "seconds", "max_rss_mb", "jobs"])
    frame = pd.DataFrame(rows)
    return frame.groupby("rule").agg(seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"),
                                     jobs=("seconds", "size")).reset_index()


def _number(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")  # Snakemake writes "-" where it could not measure


def storage_bytes(patterns: Sequence[str]) -> int:
    return sum(os.path.getsize(p) for pattern in patterns for p in glob.glob(pattern))


def evaluate_systems(systems: Sequence[System], ground_truth: pd.DataFrame, categories: pd.DataFrame | None,
                     timings: pd.DataFrame, n_images: Mapping[str, int]) -> BenchResult:
    """Accuracy, seconds per image, peak memory and bytes per reference of every system."""
    rows, families, curves = [], {}, {}
    total_images = n_images["queries"] + n_images["references"]
    by_rule = timings.set_index("rule") if len(timings) else timings
    baseline_seconds = None
    for system in systems:
        result = metrics.evaluate(system.predictions, ground_truth)
        curves[system.name] = metrics.pr_curve(system.predictions, ground_truth)
        stages = [s for s in system.stages if s in getattr(by_rule, "index", [])]
        seconds = float(by_rule.loc[stages, "seconds"].sum()) if stages else float("nan")
        row = {
            "system": system.name,
            "micro_ap": result.micro_ap,
            "recall_at_p90": result.recall_at_p90,
            "recall_at_1": result.recall_at_1,
            "seconds_per_image": seconds / total_images if total_images else float("nan"),
            "peak_rss_mb": float(by_rule.loc[stages, "max_rss_mb"].max()) if stages else float("nan"),
            "bytes_per_reference": storage_bytes(system.storage) / max(n_images["references"], 1),
        }
        for stage in stages:
            row[f"s_per_image[{stage}]"] = float(by_rule.loc[stage, "seconds"]) / total_images
        if system.baseline and baseline_seconds is None:
            baseline_seconds = seconds
        rows.append(row)
        if categories is not None:
            families[system.name] = metrics.family_recall(system.predictions, ground_truth, categories)
    table = pd.DataFrame(rows)
    if baseline_seconds:
        table["time_vs_pdq"] = table.seconds_per_image * total_images / baseline_seconds
    if not systems:
        return BenchResult(table, pd.DataFrame(families), curves)
    false_positives = metrics.top_false_positives(systems[-1].predictions, ground_truth, categories)
    misses = metrics.missed_copies({s.name: s.predictions for s in systems}, ground_truth, categories)
    return BenchResult(table, pd.DataFrame(families), curves, false_positives, misses)
