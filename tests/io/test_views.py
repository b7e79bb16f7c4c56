"""The crop view's ids: a query's crops verified with every candidate, and the best crop speaking for it."""

from __future__ import annotations

import pandas as pd

from d2lv.io.views import best_per_query, crop_id, pairs_in_view, query_of


def test_crop_ids_map_back_to_their_query():
    assert crop_id("q.1", 1) == "q.1" and crop_id("q.1", 2) == "q.1/2"
    assert query_of(crop_id("q.1", 2)) == query_of("q.1") == "q.1"


def test_each_view_of_a_query_verifies_every_candidate_of_it_once():
    pairs = pd.DataFrame({"query_id": ["a", "a", "a/2", "b", "c"], "reference_id": ["r1", "r2", "r1", "r3", "r4"]})
    crops = pairs_in_view(pairs, ["a", "a/2", "b"])  # c has no crop
    assert crops.values.tolist() == [["a", "r1"], ["a", "r2"], ["a/2", "r1"], ["a/2", "r2"], ["b", "r3"]]
    whole = pairs_in_view(pairs, ["a", "b", "c"])  # the query view: a second crop's candidate is the query's
    assert whole.values.tolist() == [["a", "r1"], ["a", "r2"], ["b", "r3"], ["c", "r4"]]


def test_the_crop_with_the_most_inliers_speaks_for_its_query():
    scores = pd.DataFrame({"query_id": ["a", "a/2", "a", "a/2", "b"], "reference_id": ["r1", "r1", "r2", "r2", "r1"],
                           "branch": "local_crop", "n_matches": [9, 50, 30, 30, 4], "n_inliers": [3, 48, 20, 12, 0]})
    best = best_per_query(scores, ["reference_id", "branch"], by=["n_inliers", "n_matches"], ascending=[False, False])
    assert best[["query_id", "reference_id", "n_inliers"]].values.tolist() == [["a", "r1", 48], ["a", "r2", 20],
                                                                               ["b", "r1", 0]]


def test_no_view_or_no_pair_verifies_nothing():
    pairs = pd.DataFrame({"query_id": ["a"], "reference_id": ["r1"]})
    assert pairs_in_view(pairs, []).empty and pairs_in_view(pairs.iloc[:0], ["a"]).empty
