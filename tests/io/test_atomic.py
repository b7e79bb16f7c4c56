"""Whole files or none: the atomic helper, and real writers interrupted half way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from d2lv.io import atomic, isc
from d2lv.local import store
from d2lv.local.params import SiftParams
from d2lv.local.sift import extract


class Interrupted(Exception):
    pass


def test_success_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "matches.csv"
    target.write_text("old\n")
    with atomic.replacing(target) as partial:
        assert partial.parent == tmp_path and partial.suffix == ".csv" and partial.name.startswith(".")
        assert not partial.exists() and target.read_text() == "old\n"  # readers still see the old file
        partial.write_text("new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["matches.csv"]


@pytest.mark.parametrize("existed", [False, True])
def test_failure_leaves_no_file_and_the_old_one_untouched(tmp_path, existed):
    target = tmp_path / "store.h5"
    if existed:
        target.write_text("old")
    with pytest.raises(Interrupted):
        with atomic.replacing(target) as partial:
            partial.write_text("half")
            raise Interrupted
    assert [p.name for p in tmp_path.iterdir()] == (["store.h5"] if existed else [])
    assert not existed or target.read_text() == "old"


class Unprintable:
    """A value whose text cannot be made: the CSV writer fails on the row holding it."""

    def __str__(self) -> str:
        raise Interrupted


def test_matches_csv_interrupted_mid_write_leaves_the_previous_one(tmp_path):
    path = tmp_path / "matches.csv"
    previous = pd.DataFrame({"query_id": ["q"], "reference_id": ["r"], "score": [1.0]})
    isc.write_isc_csv(previous, path)
    n = 300_000  # several of pandas' chunks, so that the first ones reach the disk before the failure
    scores = pd.Series(np.linspace(1, 0, n), dtype=object)
    scores.iloc[-1] = Unprintable()
    matches = pd.DataFrame({"query_id": [f"Q{i:06d}" for i in range(n)], "reference_id": "R0", "score": scores})
    with pytest.raises(Interrupted):
        isc.write_isc_csv(matches, path)
    assert [p.name for p in tmp_path.iterdir()] == ["matches.csv"]
    pd.testing.assert_frame_equal(isc.read_isc_csv(path), previous)


def test_feature_store_interrupted_mid_write_leaves_no_file(tmp_path, chelsea):
    keypoints, descriptors = extract(np.asarray(chelsea.mean(axis=2), np.uint8), SiftParams(max_keypoints=100))
    good = store.ImageFeatures("chelsea", chelsea.shape[1], chelsea.shape[0], keypoints, descriptors)
    bad = store.ImageFeatures("bad", 10, 10, np.zeros((3, 5), np.float32), np.zeros((3, 128), np.uint8))
    with pytest.raises(ValueError):  # keypoints of 5 columns: the write fails after ids and sizes
        store.write_store(tmp_path / "0000.h5", [good, bad], {})
    assert list(tmp_path.iterdir()) == []
    store.write_store(tmp_path / "0000.h5", [good], {})
    assert store.FeatureStore(tmp_path / "0000.h5").ids == ["chelsea"]
    assert [p.name for p in tmp_path.iterdir()] == ["0000.h5"]
