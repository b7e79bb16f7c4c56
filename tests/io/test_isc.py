"""ISC files: every CSV of ids read as strings, the ground truth, and labelling pairs against it."""

from __future__ import annotations

import pandas as pd
import pytest

from d2lv.evaluation.metrics import evaluate
from d2lv.io.isc import is_positive, read_ground_truth, read_isc_csv, write_isc_csv

# ---------------------------------------------------------------- read_ground_truth


def test_read_ground_truth_keeps_empty_references_as_empty_strings(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ00001,R00042\nQ00002,\nQ00003,R00007\n")
    truth = read_ground_truth(path)
    assert truth.query_id.tolist() == ["Q00001", "Q00002", "Q00003"]
    assert truth.reference_id.tolist() == ["R00042", "", "R00007"]  # "", not NaN


def test_read_ground_truth_keeps_ids_as_text(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\n00012,000345\nNA,\n")
    truth = read_ground_truth(path)
    assert truth.query_id.tolist() == ["00012", "NA"]  # no int parsing, no NaN
    assert truth.reference_id.tolist() == ["000345", ""]


def test_read_ground_truth_rejects_missing_columns(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query,reference\nQ1,R1\n")
    with pytest.raises(ValueError, match="query_id,reference_id"):
        read_ground_truth(path)


def test_read_ground_truth_feeds_evaluate(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ1,R1\nQ2,\n")
    found = pd.DataFrame({"query_id": ["Q2", "Q1"], "reference_id": ["R1", "R1"], "score": [0.9, 0.8]})
    result = evaluate(found, read_ground_truth(path))
    assert result.n_positives == 1 and result.recall_at_1 == 1.0


@pytest.mark.parametrize("query_id", ["NA", "NaN", "null", "None", "n/a", "001"])
def test_matches_csv_round_trips_ids_that_look_like_missing_values_or_numbers(tmp_path, query_id):
    path = tmp_path / "matches.csv"
    written = pd.DataFrame({"query_id": [query_id], "reference_id": ["NULL"], "score": [0.25]})
    write_isc_csv(written, path)
    read = read_isc_csv(path)
    assert read.query_id.tolist() == [query_id] and read.reference_id.tolist() == ["NULL"]
    assert read.score.tolist() == [0.25]


def test_matches_csv_without_a_score_column_is_rejected(tmp_path):
    path = tmp_path / "matches.csv"
    path.write_text("query_id,reference_id\nQ1,R1\n")
    with pytest.raises(ValueError, match="missing \\['score'\\]"):
        read_isc_csv(path)


def test_is_positive_ignores_non_copy_rows_of_the_ground_truth():
    truth = pd.DataFrame({"query_id": ["Q1", "Q2"], "reference_id": ["R1", ""]})
    pairs = pd.DataFrame({"query_id": ["Q1", "Q1", "Q2"], "reference_id": ["R1", "R2", ""]})
    assert is_positive(pairs, truth).tolist() == [True, False, False]
