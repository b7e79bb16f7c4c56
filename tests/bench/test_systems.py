"""The benchmark report: unit pieces, and `d2lv bench run` on a tiny benchmark of real photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from d2lv.bench import markdown
from d2lv.bench import systems as bench


def test_stage_timings_sum_jobs_and_keep_peak_memory(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    (tmp_path / "sift" / "queries").mkdir(parents=True)
    (tmp_path / "sift" / "queries" / "0000.tsv").write_text(header + "2.5\t0:00:02\t100.0\t200\n")
    (tmp_path / "sift" / "queries" / "0001.tsv").write_text(header + "1.5\t0:00:01\t300.0\t400\n")
    (tmp_path / "matches.tsv").write_text(header + "0.25\t0:00:00\t-\t-\n")
    timings = bench.read_stage_timings(tmp_path).set_index("rule")
    assert timings.loc["sift", "seconds"] == pytest.approx(4.0)
    assert timings.loc["sift", "max_rss_mb"] == 300.0 and timings.loc["sift", "jobs"] == 2
    assert timings.loc["matches", "seconds"] == pytest.approx(0.25)



def test_evaluate_systems_ratios_against_the_baseline():
    gt = pd.DataFrame({"query_id": ["a", "b"], "reference_id": ["R1", ""]})
    good = pd.DataFrame({"query_id": ["a", "b"], "reference_id": ["R1", "R1"], "score": [2.0, 1.0]})
    bad = pd.DataFrame({"query_id": ["a", "b"], "reference_id": ["R1", "R1"], "score": [1.0, 2.0]})
    timings = pd.DataFrame({"rule": ["fast", "slow"], "seconds": [1.0, 10.0], "max_rss_mb": [50.0, 500.0],
                            "jobs": [1, 1]})
    result = bench.evaluate_systems(
        [bench.System("base", bad, ("fast",), baseline=True), bench.System("ours", good, ("fast", "slow"))],
        gt, None, timings, {"queries": 2, "references": 2})
    table = result.table.set_index("system")
    assert table.loc["ours", "micro_ap"] == 1.0 and table.loc["base", "micro_ap"] == 0.5
    assert table.loc["ours", "time_vs_pdq"] == pytest.approx(11.0)
    assert table.loc["ours", "seconds_per_image"] == pytest.approx(11.0 / 4)
    assert table.loc["ours", "peak_rss_mb"] == 500.0


@pytest.mark.slow
def test_bench_run_on_a_tiny_benchmark(tmp_path, tiny_bench):
    out = tmp_path / "out"
    small = Path(__file__).parents[1] / "workflow" / "small.yaml"  # small detector and calibration set
    subprocess.run([sys.executable, "-m", "d2lv.cli", "bench", "run", str(tiny_bench), "-o", str(out),
                    "--cores", "2", "--configfile", str(small), "--config", "shard_size=20"],
                   check=True, capture_output=True)
    report = (out / "bench" / "report.md").read_text()
    table = pd.read_parquet(out / "bench" / "results.parquet").set_index("system")
    full = "d2lv full (calibrated merge)"
    assert set(table.index) == {"PDQ", "CNN global (ImageNet GeM)", "d2lv local votes (recall only)",
                                "d2lv local branch", "d2lv crop branch", "d2lv global branch", "d2lv hash branch",
                                "d2lv sum merge", full}
    assert table.loc[full, "micro_ap"] > table.loc["PDQ", "micro_ap"]
    assert table.loc["PDQ", "time_vs_pdq"] == pytest.approx(1.0)
    assert (table.seconds_per_image > 0).all() and (table.bytes_per_reference > 0).all()
    assert any(c.startswith("recall_at_1[") for c in table.columns)
    for name in ("pr_curves.png", "recall_per_family.png"):
        with Image.open(out / "bench" / name) as image:
            assert image.size[0] > 300
    assert f"| {full} |" in report and "![precision-recall](pr_curves.png)" in report
    assert f"## Top false positives of {full}" in report and "## Copy-region detector" in report
    assert "| paste |" in report.split("## Copy-region detector")[1]
    misses = report.split(f"## Copies missed at rank 1 by {full}")[1].split("\n## ")[0]
    truth = pd.read_csv(tiny_bench / "ground_truth.csv", dtype=str, keep_default_na=False)
    n_missed = round((1 - table.loc[full, "recall_at_1"]) * truth[truth.reference_id != ""].query_id.nunique())
    assert misses.count("\n| Q") == min(n_missed, markdown.MISSES_SHOWN)
