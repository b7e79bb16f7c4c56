"""Local recall (faiss kNN votes) and candidate selection on real photos."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest

from d2lv.local import index, store
from d2lv.local import recall as local
from d2lv.local.params import RecallParams


def merged_index(references: store.FeatureStore, folder, factory: str):
    """``references`` as shard 0 of a merged index of ``factory``, and its catalogue."""
    sample = index.training_sample([references], 50_000, seed=0)
    trained = index.train_index(sample, factory, len(sample))
    shard = folder / "0.faiss"
    faiss.write_index(index.add_shard(trained, references, 0), str(shard))
    index.merge_shards(trained, [shard], folder / "merged.faiss")
    return index.read_index(folder / "merged.faiss"), index.catalogue([(0, references)])


@pytest.fixture(scope="module")
def product_quantised(reference_store, tmp_path_factory):
    """``reference_store`` in an IVF-PQ index, and its catalogue: built once, its training is slow."""
    return merged_index(reference_store, tmp_path_factory.mktemp("pq"), "IVF4,PQ16")


class TestLocalRecall:
    def test_each_copy_finds_its_reference_first(self, reference_store, query_store, tmp_path):
        exact, catalogue = merged_index(reference_store, tmp_path, "IVF1,Flat")  # one list: exact search
        pairs = local.search_index(exact, catalogue, query_store, RecallParams(), keep=3, progress=False)
        best = pairs[pairs["rank"] == 1].set_index("query_id").reference_id
        assert best["q_astronaut"] == "astronaut"
        assert (pairs.groupby("query_id").size() <= 3).all()
        votes = pairs[pairs.query_id == "q_astronaut"].set_index("reference_id").votes
        assert votes["astronaut"] > 5 * votes.drop("astronaut").max()

    def test_ivf_index_agrees_with_exact_search(self, reference_store, query_store, tmp_path):
        params = RecallParams(nprobe=8)
        (tmp_path / "exact").mkdir()
        (tmp_path / "ivf").mkdir()
        exact = local.search_index(*merged_index(reference_store, tmp_path / "exact", "IVF1,Flat"), query_store,
                                   params, keep=1, progress=False)
        ivf = local.search_index(*merged_index(reference_store, tmp_path / "ivf", "IVF8,Flat"), query_store,
                                 params, keep=1, progress=False)
        assert exact.set_index("query_id").reference_id["q_astronaut"] == \
            ivf.set_index("query_id").reference_id["q_astronaut"]

    def test_product_quantised_codes_keep_the_copy_first(self, product_quantised, query_store):
        pq, catalogue = product_quantised
        pairs = local.search_index(pq, catalogue, query_store, RecallParams(nprobe=4), keep=1, progress=False)
        assert pairs.set_index("query_id").reference_id["q_astronaut"] == "astronaut"

    def test_a_query_searched_alone_gets_the_votes_and_distances_of_the_batch(self, product_quantised, query_store,
                                                                               tmp_path, monkeypatch):
        """Each query image searched from a store of its own gives the frame rows of all queries searched at
        once: batches never split an image, and the coarse quantiser's distances (which IVF-PQ adds to the
        codes') do not depend on how many descriptors faiss searches together."""
        pq, catalogue = product_quantised
        params = RecallParams(nprobe=2)
        counts = query_store.counts()
        # faiss' default takes BLAS above 128,000 = 1,000 descriptors x 128 dimensions: the first batch, no image alone
        assert counts[:3].sum() > 1000 > counts.max()
        monkeypatch.setattr(local, "BATCH_DESCRIPTORS", counts[:3].sum() + 1)  # three whole images, then one
        threshold, threads = faiss.cvar.distance_compute_blas_threshold, faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # faiss splits a search into one slice per thread, each below the threshold
        try:
            batch = local.search_index(pq, catalogue, query_store, params, keep=3, progress=False)
        finally:
            faiss.omp_set_num_threads(threads)
        assert faiss.cvar.distance_compute_blas_threshold == threshold  # restored
        assert set(batch.query_id) >= {"q_astronaut", "q_coffee_mirrored"}
        for query_id in query_store.ids:
            path = tmp_path / f"{query_id}.h5"
            store.write_store(path, [query_store.get(query_id)], query_store.attrs)
            alone = local.search_index(pq, catalogue, store.FeatureStore(path), params, keep=3, progress=False)
            expected = batch[batch.query_id == query_id].reset_index(drop=True)
            pd.testing.assert_frame_equal(alone, expected, check_exact=True)


def test_batches_hold_whole_images():
    offsets = np.array([0, 10, 20, 30, 95, 95, 100])  # image 3 has more rows than a batch, image 4 none
    assert local.image_batches(offsets, 25) == [(0, 20), (20, 30), (30, 95), (95, 100)]
    assert local.image_batches(offsets, 1000) == [(0, 100)]
    assert local.image_batches(np.array([0, 40, 40]), 25) == [(0, 40)]
    assert local.image_batches(np.array([0]), 25) == []


def pairs_frame(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query_id", "reference_id", "votes", "mean_distance"]).assign(
        branch="local", rank=0)


class TestSelectCandidates:
    def test_topk_is_global_over_shards(self):
        shards = pairs_frame([("q", "a", 5, 0.2), ("q", "b", 9, 0.3), ("q", "c", 9, 0.1), ("p", "a", 3, 0.2)])
        got = local.select_candidates(shards, topk=2)
        assert got[got.query_id == "q"].reference_id.tolist() == ["c", "b"]
        assert got[got.query_id == "q"]["rank"].tolist() == [1, 2]

    def test_single_candidate_rule(self):
        shards = pairs_frame([
            ("clear", "a", 8, 0.2), ("clear", "b", 4, 0.3),  # wins: 8 > 3 and 8 > 4
            ("tied", "a", 6, 0.2), ("tied", "b", 6, 0.3),  # no: not strictly more than the runner-up
            ("alone_weak", "a", 5, 0.2),  # no: alone needs more than 5
            ("alone_strong", "a", 6, 0.2),  # wins
            ("far", "a", 20, 0.5), ("far", "b", 2, 0.5),  # no: mean distance too large
        ])
        got = local.select_candidates(shards, topk=10, mode="single")
        assert sorted(got.query_id) == ["alone_strong", "clear"]
        assert (got.reference_id == "a").all()
