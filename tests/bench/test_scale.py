"""``d2lv bench scale``: its settings, and the costs it reads from a run's benchmark files."""

from __future__ import annotations

import json
from unittest.mock import patch

import pandas as pd
import pytest

from d2lv.bench import scale
from d2lv.io import tables


def test_a_setting_links_the_benchmark_references_and_as_many_distractors_as_it_needs(tmp_path):
    bench = tmp_path / "bench"
    (bench / "references").mkdir(parents=True)
    for i in range(3):
        (bench / "references" / f"R{i}.jpg").write_bytes(b"x")
    distractors = [tmp_path / f"distractor{i}.jpg" for i in range(5)]
    for path in distractors:
        path.write_bytes(b"x")
    folder = scale.prepare(bench, distractors, scale.Setting(7, 2), tmp_path / "out")
    assert sorted(p.name for p in folder.rglob("*.jpg")) == ["R0.jpg", "R1.jpg", "R2.jpg",
                                                             *(f"distractor{i}.jpg" for i in range(4))]
    with pytest.raises(ValueError, match="too few"):
        scale.prepare(bench, distractors, scale.Setting(9, 2), tmp_path / "out")


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
    (results / "logs").mkdir()
    (results / "logs" / "local_train.log").write_text("trained 4 lists on 300 descriptors\n")
    ground_truth = pd.DataFrame({"query_id": ["Q1", "Q2", "Q3"], "reference_id": ["R1", "R2", ""]})
    candidates = results / "work" / "local" / "queries_crops" / "candidates"
    candidates.mkdir(parents=True)
    tables.write_table(pd.DataFrame({"query_id": ["Q1", "Q2/2"], "reference_id": ["R1", "R9"],
                                     "branch": "crop", "votes": [5, 4], "mean_distance": [0.1, 0.1],
                                     "rank": [1, 1]}),
                       candidates / "0000.parquet", tables.PAIRS)
    index_shape = {"index_descriptors": 300, "index_lists": 4, "training_sample": 300, "index_bytes": 400}
    with patch.object(scale, "index_shape", return_value=index_shape):
        row = scale.measure(results, scale.Setting(4, 8), n_queries=3, ground_truth=ground_truth)
    assert row["query_seconds_per_query"] == pytest.approx(2.0)
    assert row["reference_seconds_per_reference"] == pytest.approx(5.0 / 4)
    assert row["index_bytes_per_reference"] == 100 and row["reference_shards"] == 2
    assert row["peak_rss_mb"] == 300 and row["micro_ap"] == 0.9
    assert row["local_candidate_recall"] == 0.5  # Q1's crop found R1, Q2's found another reference
    assert row["index_lists"] == 4


def test_the_report_has_ratios_to_the_smallest_setting(tmp_path):
    table = pd.DataFrame([
        {"setting": "10 references", "references": 10, "shard_size": 8, "reference_shards": 2,
         "query_seconds_per_query": 1.0, "reference_seconds_per_reference": 0.5, "index_bytes_per_reference": 9.0,
         "peak_rss_mb": 1.0, "micro_ap": 0.9, "recall_at_p90": 0.8, "local_candidate_recall": 1.0,
         "wall_seconds": 10.0},
        {"setting": "20 references", "references": 20, "shard_size": 8, "reference_shards": 4,
         "query_seconds_per_query": 1.2, "reference_seconds_per_reference": 0.5, "index_bytes_per_reference": 9.0,
         "peak_rss_mb": 1.0, "micro_ap": 0.88, "recall_at_p90": 0.8, "local_candidate_recall": 0.99,
         "wall_seconds": 20.0},
    ])
    scale.scale_report(table, tmp_path)
    written = pd.read_parquet(tmp_path / "scale.parquet")
    assert written.query_cost_vs_first.tolist() == pytest.approx([1.0, 1.2])
    assert written.micro_ap_vs_first.tolist() == pytest.approx([0.0, -0.02])
    assert written.candidate_recall_vs_first.tolist() == pytest.approx([0.0, -0.01])
    assert (tmp_path / "scale.png").stat().st_size > 0 and "20 references" in (tmp_path / "scale.md").read_text()
