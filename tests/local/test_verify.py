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

    def test_mirrored_pass_runs_only_when_its_probe_finds_matches(self, reference_store, query_store):
        params = VerifyParams()
        reference = sift.dequantize(reference_store.get("coffee").descriptors)

        def probe(query_id: str) -> bool:
            query = sift.dequantize(query_store.get(query_id).descriptors)
            return verify.mirror_can_win(query[:, sift.MIRROR_PERMUTATION], reference, params)

        assert probe("q_coffee_mirrored")
        assert not probe("q_astronaut")
        assert verify.mirror_can_win(reference[:10], reference, VerifyParams(mirror_probe=0))

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
        assert scores.set_index("query_id").score["q_astronaut"] > 5 * scores.set_index("query_id").score[
            "q_motorcycle"]

    def test_unknown_geometry_is_rejected(self):
        with pytest.raises(ValueError, match="geometry"):
            VerifyParams(geometry="similarity")
