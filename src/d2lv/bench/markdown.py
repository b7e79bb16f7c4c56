"""The benchmark's written report: ``report.md``, ``results.parquet`` and its plots."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from d2lv.bench.systems import MAX_PER_QUERY, BenchResult
from d2lv.report.plots import plot_family_recall, plot_pr_curves


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
        markdown_table(result.table[main_columns]),
        "",
        "![precision-recall](pr_curves.png)",
    ]
    if len(result.families):
        lines += ["", "## recall@1 per recipe family", "", markdown_table(result.families.reset_index(
            names="family")), "", "![recall per family](recall_per_family.png)"]
    if result.false_positives is not None and len(result.false_positives):
        lines += ["", f"## Top false positives of {result.table.system.iloc[-1]}", "",
                  "Best-scored pairs that are not copies. kind: copy (the query copies another reference), "
                  "noncopy, or hard_negative (same_object: the reference shows the query's object).", "",
                  markdown_table(result.false_positives)]
    if result.misses is not None:
        lines += ["", f"## Copies missed at rank 1 by {result.table.system.iloc[-1]}", "",
                  *_misses_section(result.misses)]
    if result.detector is not None:
        lines += ["", "## Copy-region detector", "", "Per family: queries whose photo lies in a larger picture "
                  "(placed), the share whose first box (the most confident) overlaps the true one with IoU >= 0.5 "
                  "(box_recall), the share for which any cropped box does (crop_recall), and full-frame queries "
                  "the detector cropped all the same.", "", markdown_table(result.detector)]
    stage_columns = [c for c in result.table.columns if c.startswith("s_per_image[")]
    if stage_columns:
        per_stage = result.table[stage_columns].max(axis=0)  # a step costs the same in every system using it
        stages = pd.DataFrame({
            "step": [c.removeprefix("s_per_image[").removesuffix("]") for c in stage_columns],
            "seconds_per_image": per_stage.to_numpy(),
            "images_per_second": 1.0 / per_stage.to_numpy(),
        })
        lines += ["", "## Throughput by workflow step (all images, 2 CPU cores unless stated)", "",
                  markdown_table(stages)]
    return "\n".join(lines) + "\n"


#: Rows of the missed-copies table a report shows; the count of all misses is given above it.
MISSES_SHOWN = 20


def _misses_section(misses: pd.DataFrame) -> list[str]:
    if not len(misses):
        return ["Every copy query ranks its true reference first."]
    shown = "" if len(misses) <= MISSES_SHOWN else f"; the first {MISSES_SHOWN} by query id"
    count = "1 copy query" if len(misses) == 1 else f"{len(misses)} copy queries"
    return [f"{count}{shown}: the true reference, what ranks first instead (and its score), "
            f"and the rank each system gives the true reference (empty: not among its {MAX_PER_QUERY} best "
            "predictions for the query).", "", markdown_table(misses.head(MISSES_SHOWN))]


def markdown_table(frame: pd.DataFrame) -> str:
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
