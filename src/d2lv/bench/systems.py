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

import numpy as np
import pandas as pd

from d2lv.evaluation import metrics


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


def read_predictions(spec: str, max_per_query: int = 10) -> pd.DataFrame:
    """``PATH[#COLUMN[@PRESENT]]``: a CSV or Parquet file, scored by ``score`` or by COLUMN,
    keeping only rows where column PRESENT has a value (e.g. the pairs one branch recalled),
    and each query's ``max_per_query`` best rows by that score (as a system would submit)."""
    path, _, selector = spec.partition("#")
    column, _, present = selector.partition("@")
    frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, dtype={
        "query_id": str, "reference_id": str})
    column = column or "score"
    for name in filter(None, (column, present)):
        if name not in frame.columns:
            raise ValueError(f"{path}: no column {name!r} (columns: {', '.join(frame.columns)})")
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


def family_recall(predictions: pd.DataFrame, ground_truth: pd.DataFrame, categories: pd.DataFrame) -> pd.Series:
    """recall@1 of the copy queries of each recipe family."""
    copies = categories[categories.kind == "copy"]
    out = {}
    for family, group in copies.groupby("recipe"):
        gt = ground_truth[ground_truth.query_id.isin(group.query_id)]
        out[family] = metrics.recall_at_one(predictions[predictions.query_id.isin(group.query_id)], gt)
    return pd.Series(out, dtype="float64")


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
            families[system.name] = family_recall(system.predictions, ground_truth, categories)
    table = pd.DataFrame(rows)
    if baseline_seconds:
        table["time_vs_pdq"] = table.seconds_per_image * total_images / baseline_seconds
    return BenchResult(table, pd.DataFrame(families), curves)


def plot_pr_curves(curves: Mapping[str, metrics.PRCurve], path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in curves.items():
        ax.plot(np.concatenate([[0.0], curve.recall]), np.concatenate([[1.0], curve.precision]), label=name)
    ax.axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (micro)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_family_recall(families: pd.DataFrame, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(families)), 4.5))
    families.plot.bar(ax=ax, width=0.8)
    ax.set(ylabel="recall@1", ylim=(0, 1.05), title="recall@1 per recipe family")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_report(result: BenchResult, n_images: Mapping[str, int], title: str) -> str:
    main_columns = ["system", "micro_ap", "recall_at_p90", "recall_at_1", "seconds_per_image", "peak_rss_mb",
                    "bytes_per_reference"] + (["time_vs_pdq"] if "time_vs_pdq" in result.table else [])
    lines = [
        f"# {title}",
        "",
        f"{n_images['references']} references, {n_images['queries']} queries. micro-AP and recall at "
        "precision 0.9 as in ISC 2021; recall@1 over copy queries. Seconds per image: wall seconds of the "
        "system's workflow steps summed over jobs, divided by all images (queries + references). Peak RSS: "
        "the largest single job. Bytes per reference: the system's stored reference-side index.",
        "",
        _markdown_table(result.table[main_columns]),
        "",
        "![precision-recall](pr_curves.png)",
    ]
    if len(result.families):
        lines += ["", "## recall@1 per recipe family", "", _markdown_table(result.families.reset_index(
            names="family")), "", "![recall per family](recall_per_family.png)"]
    stage_columns = [c for c in result.table.columns if c.startswith("s_per_image[")]
    if stage_columns:
        per_stage = result.table[stage_columns].max(axis=0)  # a step costs the same in every system using it
        stages = pd.DataFrame({
            "step": [c.removeprefix("s_per_image[").removesuffix("]") for c in stage_columns],
            "seconds_per_image": per_stage.to_numpy(),
            "images_per_second": 1.0 / per_stage.to_numpy(),
        })
        lines += ["", "## Throughput by workflow step (all images, 2 CPU cores unless stated)", "",
                  _markdown_table(stages)]
    return "\n".join(lines) + "\n"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else (f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}")
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(result: BenchResult, out: str | os.PathLike, n_images: Mapping[str, int],
                 title: str = "d2lv benchmark") -> None:
    """``report.md``, ``results.parquet``, ``pr_curves.png`` and ``recall_per_family.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = result.table.copy()
    for system, recalls in result.families.items():
        for family, value in recalls.items():
            table.loc[table.system == system, f"recall_at_1[{family}]"] = value
    table.to_parquet(out / "results.parquet", index=False)
    plot_pr_curves(result.curves, out / "pr_curves.png")
    if len(result.families):
        plot_family_recall(result.families, out / "recall_per_family.png")
    (out / "report.md").write_text(markdown_report(result, n_images, title))
