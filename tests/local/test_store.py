"""The HDF5 feature store: shards read back as one store."""

from __future__ import annotations

import numpy as np
import pytest

from d2lv.errors import InputError
from d2lv.local import store
from d2lv.local.params import SiftParams
from d2lv.local.sift import extract


class TestStore:
    def test_round_trip_over_two_shards(self, photos, tmp_path):
        a = store.ImageFeatures("a", *photos["chelsea"].shape[1::-1],
                                *extract(photos["chelsea"], SiftParams(max_keypoints=200)))
        b = store.ImageFeatures("b", *photos["coffee"].shape[1::-1],
                                *extract(photos["coffee"], SiftParams(max_keypoints=150)))
        empty = store.ImageFeatures("blank", 10, 10, np.zeros((0, 4), np.float32), np.zeros((0, 128), np.uint8))
        store.write_store(tmp_path / "0.h5", [a, empty], {"short_side": 300})
        store.write_store(tmp_path / "1.h5", [b], {"short_side": 300})
        both = store.FeatureStore([tmp_path / "0.h5", tmp_path / "1.h5"])
        assert both.ids == ["a", "blank", "b"]
        assert list(both.counts()) == [len(a.descriptors), 0, len(b.descriptors)]
        got = both.get("b")
        np.testing.assert_array_equal(got.descriptors, b.descriptors)
        np.testing.assert_array_equal(got.keypoints, b.keypoints)
        assert (got.width, got.height) == (b.width, b.height)
        rows = np.array([0, len(a.descriptors) - 1, len(a.descriptors)])
        assert list(both.owner(rows)) == [0, 0, 2]
        assert both.attrs["short_side"] == 300

    def test_a_store_gives_back_the_settings_it_was_extracted_with(self, reference_store, tmp_path):
        assert reference_store.extraction() == SiftParams()
        store.write_store(tmp_path / "partial.h5", [reference_store.get("chelsea")], {"short_side": 300})
        partial = store.FeatureStore(tmp_path / "partial.h5")
        with pytest.raises(InputError, match="max_upscale.*d2lv sift"):
            partial.extraction()


def test_a_store_of_many_shards_reads_images_lazily_with_few_files_open(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_OPEN_FILES", 2)
    paths = []
    for i, name in enumerate(["chelsea", "coffee", "rocket", "astronaut"]):
        path = tmp_path / f"{i}.h5"
        store.write_store(path, [store.ImageFeatures(name, *photos[name].shape[1::-1],
                                                     *extract(photos[name], SiftParams(max_keypoints=100)))], {})
        paths.append(path)
    lazy, eager = store.FeatureStore(paths), store.FeatureStore(paths)
    eager.descriptors, eager.keypoints  # noqa: B018 (loads every array)
    for name in ["rocket", "chelsea", "astronaut", "coffee", "rocket"]:
        a, b = lazy.get(name), eager.get(name)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert len(lazy._open) <= 2
    assert "descriptors" not in lazy.__dict__, "get() did not load the whole store"


def test_a_store_held_in_memory_reads_as_the_written_one(photos, tmp_path):
    """One query's views, never written (`d2lv query`): ids, sizes, offsets and rows as from the file."""
    features = [store.ImageFeatures(name, *photos[name].shape[1::-1], *extract(photos[name], SiftParams()))
                for name in ("chelsea", "coffee")]
    store.write_store(tmp_path / "q.h5", features, {"short_side": 300})
    written = store.FeatureStore(tmp_path / "q.h5")
    held = store.FeatureStore.from_features(features, {"short_side": 300})
    assert held.ids == written.ids and held.attrs == written.attrs
    np.testing.assert_array_equal(held.sizes, written.sizes)
    np.testing.assert_array_equal(held.offsets, written.offsets)
    np.testing.assert_array_equal(held.descriptors, written.descriptors)
    np.testing.assert_array_equal(held.get("coffee").keypoints, written.get("coffee").keypoints)


def test_a_store_held_open_reads_its_files_after_a_run_replaces_them(reference_store, tmp_path):
    """A serving collection holds its reference shards open: a rerun that replaces a file (a new inode, as
    every d2lv write does) does not change what it reads."""
    chelsea = reference_store.get("chelsea")
    path = tmp_path / "refs.h5"
    store.write_store(path, [chelsea], {"short_side": 300})
    held = store.FeatureStore(path)
    held.hold_open()
    store.write_store(path, [store.ImageFeatures("other", 5, 5, chelsea.keypoints[:3], chelsea.descriptors[:3])],
                      {"short_side": 300})
    np.testing.assert_array_equal(held.get("chelsea").descriptors, chelsea.descriptors)
