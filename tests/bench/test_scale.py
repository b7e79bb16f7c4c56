"""``d2lv bench scale``: its settings, and the costs it reads from a run's benchmark files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from d2lv.bench import scale
from d2lv.synth import benchmark


def test_settings_cut_four_times_more_shards_and_grow_as_far_as_the_pool_goes():
    assert [(s.name, s.shard_size, s.n_distractors) for s in scale.settings(64, 150, 500)] == [
        ("base", 64, 0), ("shards x4", 16, 0), ("refs x2", 64, 150), ("refs x4", 64, 450)]
    assert [s.name for s in scale.settings(64, 150, 200)] == ["base", "shards x4", "refs x2"]


def _benchmark_file(path, seconds: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t{rss}\n")


def test_measure_splits_query_side_from_reference_side(tmp_path):
    results = tmp_path / "results"
    bench = results / "benchmarks"
    _benchmark_file(bench / "sift" / "queries" / "0000.tsv", 2.0, 100)
    _benchmark_file(bench / "verify" / "queries_crops" / "0000.tsv", 4.0, 300)
    _benchmark_file(bench / "verify" / "calibration" / "0000.tsv", 50.0, 100)  # model fitting: neither side
    _benchmark_file(bench / "sift" / "references" / "0000.tsv", 3.0, 100)
    _benchmark_file(bench / "local_add" / "0000.tsv", 1.0, 100)
    _benchmark_file(bench / "local_merge.tsv", 1.0, 100)
    (results / "metrics.json").write_text(json.dumps({"micro_ap": 0.9, "recall_at_p90": 0.8}))
    (results / "work" / "manifests" / "references").mkdir(parents=True)
    for shard in ("0000", "0001"):
        (results / "work" / "manifests" / "references" / f"{shard}.parquet").write_bytes(b"")
    index = results / "work" / "local" / "index"
    index.mkdir(parents=True)
    (index / "merged.faiss").write_bytes(b"x" * 100)
    (index / "merged.ivfdata").write_bytes(b"x" * 300)
    row = scale.measure(results, scale.Setting("base", 8, 0), n_queries=3, n_references=4)
    assert row["query_seconds_per_query"] == pytest.approx(2.0)
    assert row["reference_seconds_per_reference"] == pytest.approx(5.0 / 4)
    assert row["index_bytes_per_reference"] == 100 and row["reference_shards"] == 2
    assert row["peak_rss_mb"] == 300 and row["micro_ap"] == 0.9


def test_the_pool_split_keeps_distractors_out_of_the_benchmark(bench_sources):
    photos, distractors = benchmark.split_pool(bench_sources, 20, seed=0)
    assert len(photos) == 20 and distractors and not set(photos) & set(distractors)
    assert benchmark.split_pool(bench_sources, 20, seed=0) == (photos, distractors)
    with pytest.raises(ValueError, match="distractors"):
        benchmark.split_pool(bench_sources, 10_000, seed=0)


def test_the_report_has_ratios_to_the_base_setting(tmp_path):
    table = pd.DataFrame([
        {"setting": "base", "references": 10, "shard_size": 8, "reference_shards": 2,
         "query_seconds_per_query": 1.0, "reference_seconds_per_reference": 0.5, "index_bytes_per_reference": 9.0,
         "peak_rss_mb": 1.0, "micro_ap": 0.9, "recall_at_p90": 0.8},
        {"setting": "refs x2", "references": 20, "shard_size": 8, "reference_shards": 4,
         "query_seconds_per_query": 1.2, "reference_seconds_per_reference": 0.5, "index_bytes_per_reference": 9.0,
         "peak_rss_mb": 1.0, "micro_ap": 0.88, "recall_at_p90": 0.8},
    ])
    scale.scale_report(table, tmp_path)
    written = pd.read_parquet(tmp_path / "scale.parquet")
    assert written.query_cost_vs_base.tolist() == pytest.approx([1.0, 1.2])
    assert written.micro_ap_vs_base.tolist() == pytest.approx([0.0, -0.02])
    assert (tmp_path / "scale.png").stat().st_size > 0 and "refs x2" in (tmp_path / "scale.md").read_text()
