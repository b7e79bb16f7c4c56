"""Local recall (faiss kNN votes) and candidate selection on real photos."""

from __future__ import annotations

import pandas as pd
import pytest

from d2lv.local import recall as local
from d2lv.local.params import RecallParams


class TestLocalRecall:
    def test_each_copy_finds_its_reference_first(self, reference_store, query_store):
        index = local.build_index(reference_store, "Flat")
        pairs = local.search_shard(index, reference_store, query_store, RecallParams(topk=3), progress=False)
        best = pairs[pairs["rank"] == 1].set_index("query_id").reference_id
        assert best["q_astronaut"] == "astronaut"
        assert (pairs.groupby("query_id").size() <= 3).all()
        votes = pairs[pairs.query_id == "q_astronaut"].set_index("reference_id").votes
        assert votes["astronaut"] > 5 * votes.drop("astronaut").max()

    def test_ivf_index_agrees_with_exact_search(self, reference_store, query_store):
        params = RecallParams(topk=1, nprobe=8)
        exact = local.search_shard(local.build_index(reference_store, "Flat"), reference_store, query_store,
                                   params, progress=False)
        ivf = local.search_shard(local.build_index(reference_store, "IVF8,Flat"), reference_store,
                                 query_store, params, progress=False)
        assert exact.set_index("query_id").reference_id["q_astronaut"] == \
            ivf.set_index("query_id").reference_id["q_astronaut"]

    def test_auto_factory_switches_to_ivf_for_large_shards(self):
        assert local.resolve_factory("auto", 10_000) == "Flat"
        assert local.resolve_factory("auto", 270_000).startswith("IVF")
        assert local.resolve_factory("IVF64,PQ16", 10) == "IVF64,PQ16"

    def test_ivf_on_too_few_descriptors_is_a_clear_error(self, reference_store):
        with pytest.raises(ValueError, match="auto"):
            local.build_index(reference_store, "IVF65536,Flat")


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
