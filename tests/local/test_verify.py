"""Ratio-test matching, the mirrored pass and geometric verification of real copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from d2lv.local import sift, verify
from d2lv.local.params import VerifyParams


class TestVerify:
    def test_copy_has_many_inliers_and_a_non_copy_few(self, reference_store, query_store):
        params = VerifyParams()
        copy = verify.verify_pair(query_store.get("q_astronaut"), reference_store.get("astronaut"), params)
        other = verify.verify_pair(query_store.get("q_motorcycle"), reference_store.get("astronaut"), params)
        assert copy.n_inliers >= 40 and not copy.flipped
        assert other.n_inliers <= 8
        assert copy.n_inliers <= copy.n_matches

    def test_mirrored_copy_is_found_by_the_mirrored_pass(self, reference_store, query_store):
        query, reference = query_store.get("q_coffee_mirrored"), reference_store.get("coffee")
        plain = verify.verify_pair(query, reference, VerifyParams(mirrored=False))
        both = verify.verify_pair(query, reference, VerifyParams())
        assert both.flipped and both.n_inliers >= 40
        assert both.n_inliers > 4 * max(plain.n_inliers, 1)

    def test_inverted_copy_is_found_by_the_inverted_pass(self, reference_store, query_store):
        query, reference = query_store.get("q_astronaut_negative"), reference_store.get("astronaut")
        plain = verify.verify_pair(query, reference, VerifyParams(inverted=False))
        found = verify.verify_pair(query, reference, VerifyParams())
        assert found.inverted and not found.flipped and found.n_inliers >= 40
        assert plain.n_inliers < 8 and not plain.inverted
        unrelated = verify.verify_pair(query_store.get("q_motorcycle"), reference, VerifyParams())
        assert unrelated.n_inliers <= 8 and not unrelated.inverted

    def test_ratio_test_is_stricter_with_lower_ratio(self, reference_store, query_store):
        q, r = query_store.get("q_astronaut"), reference_store.get("astronaut")
        loose, _ = verify.ratio_matches(q.descriptors, r.descriptors, 0.9)
        strict, _ = verify.ratio_matches(q.descriptors, r.descriptors, 0.6)
        assert len(strict) < len(loose)

    def test_two_nearest_equals_a_full_sort(self, reference_store, query_store):
        q = sift.dequantize(query_store.get("q_astronaut").descriptors)
        r = sift.dequantize(reference_store.get("coffee").descriptors)
        nearest, d1, d2 = verify.two_nearest(q, r)
        exact = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
        order = np.sort(exact, axis=1)
        np.testing.assert_allclose(d1, order[:, 0], atol=1e-5)
        np.testing.assert_allclose(d2, order[:, 1], atol=1e-5)
        np.testing.assert_allclose(exact[np.arange(len(q)), nearest], order[:, 0], atol=1e-5)

    def test_probe_gives_the_full_match_of_a_copy_and_stops_a_non_copy_early(self, reference_store, query_store):
        full, probed = VerifyParams(probe_stride=1), VerifyParams()

        def matches(query_id: str, reference_id: str, params: VerifyParams) -> tuple[list[int], list[int]]:
            query = sift.dequantize(query_store.get(query_id).descriptors)
            reference = sift.dequantize(reference_store.get(reference_id).descriptors)
            return tuple(indices.tolist() for indices in verify.probed_ratio_matches(query, reference, params))

        assert matches("q_astronaut", "astronaut", probed) == matches("q_astronaut", "astronaut", full)
        assert len(matches("q_astronaut", "astronaut", full)[0]) >= 40
        stopped = matches("q_motorcycle", "chelsea", probed)
        assert len(stopped[0]) < probed.probe_matches
        assert all(i % probed.probe_stride == 0 for i in stopped[0]), "a stopped pass keeps only the probe's matches"

    def test_mirrored_copy_found_with_or_without_the_probe(self, reference_store, query_store):
        query, reference = query_store.get("q_coffee_mirrored"), reference_store.get("coffee")
        full = verify.verify_pair(query, reference, VerifyParams(probe_stride=1))
        probed = verify.verify_pair(query, reference, VerifyParams())
        assert probed == full and probed.flipped

    def test_duplicate_positions_count_once(self):
        points = np.array([[10, 10, 1, 0], [10.2, 9.9, 1, 90], [50, 50, 1, 0]], np.float32)
        q_idx, r_idx = verify.unique_positions(np.array([0, 1, 2]), np.array([0, 1, 2]), points, points)
        assert q_idx.tolist() == [0, 2] and r_idx.tolist() == [0, 2]

    def test_verify_pairs_writes_the_score_schema(self, reference_store, query_store):
        pairs = pd.DataFrame({"query_id": ["q_astronaut", "q_motorcycle", "unknown"],
                              "reference_id": ["astronaut", "astronaut", "astronaut"]})
        scores = verify.verify_pairs(pairs, query_store, reference_store, VerifyParams(), "local",
                                     progress=False)
        assert len(scores) == 2, "pairs whose features are absent are not scored"
        counts = scores.set_index("query_id")
        assert counts.query_keypoints["q_motorcycle"] == len(query_store.get("q_motorcycle").keypoints)
        assert (counts.reference_keypoints == len(reference_store.get("astronaut").keypoints)).all()
        assert scores.set_index("query_id").score["q_astronaut"] > 5 * scores.set_index("query_id").score[
            "q_motorcycle"]

    def test_unknown_geometry_is_rejected(self):
        with pytest.raises(ValueError, match="geometry"):
            VerifyParams(geometry="similarity")
