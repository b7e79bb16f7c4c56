"""SIFT extraction, the feature store, local recall and local verification on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data

from d2lv.local import recall as local
from d2lv.local import sift, store, verify


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def features(image_id: str, image: np.ndarray, max_keypoints: int = 600) -> store.ImageFeatures:
    keypoints, descriptors = sift.extract(image, 300, max_keypoints)
    return store.ImageFeatures(image_id, image.shape[1], image.shape[0], keypoints, descriptors)


def rotated_crop(image: np.ndarray, angle: float = 15.0) -> np.ndarray:
    h, w = image.shape[:2]
    crop = image[h // 6: h - h // 8, w // 5: w - w // 10]
    ch, cw = crop.shape[:2]
    matrix = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 0.8)
    return cv2.warpAffine(crop, matrix, (cw, ch), borderValue=0)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {
        "astronaut": gray(data.astronaut()),
        "chelsea": gray(data.chelsea()),
        "coffee": gray(data.coffee()),
        "rocket": gray(data.rocket()),
        "motorcycle": gray(data.stereo_motorcycle()[0]),
    }


@pytest.fixture(scope="module")
def reference_store(photos, tmp_path_factory) -> store.FeatureStore:
    path = tmp_path_factory.mktemp("features") / "references.h5"
    refs = [features(name, photos[name]) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    store.write_store(path, refs, {"short_side": 300})
    return store.FeatureStore(path)


@pytest.fixture(scope="module")
def query_store(photos, tmp_path_factory) -> store.FeatureStore:
    path = tmp_path_factory.mktemp("features") / "queries.h5"
    queries = [
        features("q_astronaut", rotated_crop(photos["astronaut"])),
        features("q_coffee_mirrored", np.ascontiguousarray(photos["coffee"][:, ::-1])),
        features("q_motorcycle", photos["motorcycle"]),  # not a reference
    ]
    store.write_store(path, queries, {"short_side": 300})
    return store.FeatureStore(path)


class TestExtract:
    def test_keypoints_in_original_pixels_and_capped(self, photos):
        image = photos["astronaut"]  # 512x512, extracted at 300x300
        keypoints, descriptors = sift.extract(image, short_side=300, max_keypoints=400)
        assert 300 < len(keypoints) <= 400
        assert descriptors.dtype == np.uint8 and descriptors.shape == (len(keypoints), 128)
        assert keypoints[:, 0].max() > 400, "x must be rescaled to the original 512 px width"
        assert (keypoints[:, :2] >= 0).all() and (keypoints[:, :2] < 512).all()

    def test_rootsift_has_unit_norm(self, photos):
        _, descriptors = sift.extract(photos["chelsea"])
        norms = np.linalg.norm(sift.dequantize(descriptors), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=0.02)

    def test_small_image_is_not_upscaled(self, photos):
        small = cv2.resize(photos["coffee"], (200, 133))
        keypoints, _ = sift.extract(small, short_side=300)
        assert keypoints[:, 0].max() < 200

    def test_blank_image_has_no_keypoints(self):
        keypoints, descriptors = sift.extract(np.full((200, 300), 128, np.uint8))
        assert keypoints.shape == (0, 4) and descriptors.shape == (0, 128)


def test_mirror_equals_extraction_on_the_mirrored_image(photos):
    image = photos["astronaut"]
    raw = cv2.SIFT_create(nfeatures=300)
    kps, des = raw.detectAndCompute(image, None)
    points = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in kps], np.float32)
    mirrored_points, mirrored = sift.mirror(points, sift.rootsift_uint8(des), image.shape[1])
    flipped_kps = [cv2.KeyPoint(float(x), float(y), float(s), float(a), k.response, k.octave)
                   for (x, y, s, a), k in zip(mirrored_points, kps)]
    _, expected = raw.compute(np.ascontiguousarray(image[:, ::-1]), flipped_kps)
    error = np.abs(mirrored.astype(float) - sift.rootsift_uint8(expected)).mean()
    unpermuted = np.abs(sift.rootsift_uint8(des).astype(float) - sift.rootsift_uint8(expected)).mean()
    assert error < 0.2 * unpermuted


class TestStore:
    def test_round_trip_over_two_shards(self, photos, tmp_path):
        a = features("a", photos["chelsea"], 200)
        b = features("b", photos["coffee"], 150)
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


class TestLocalRecall:
    def test_each_copy_finds_its_reference_first(self, reference_store, query_store):
        index = local.build_index(reference_store, "Flat")
        pairs = local.search_shard(index, reference_store, query_store, local.RecallParams(topk=3), progress=False)
        best = pairs[pairs["rank"] == 1].set_index("query_id").reference_id
        assert best["q_astronaut"] == "astronaut"
        assert (pairs.groupby("query_id").size() <= 3).all()
        votes = pairs[pairs.query_id == "q_astronaut"].set_index("reference_id").votes
        assert votes["astronaut"] > 5 * votes.drop("astronaut").max()

    def test_ivf_index_agrees_with_exact_search(self, reference_store, query_store):
        params = local.RecallParams(topk=1, nprobe=8)
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


class TestVerify:
    def test_copy_has_many_inliers_and_a_non_copy_few(self, reference_store, query_store):
        params = verify.VerifyParams()
        copy = verify.verify_pair(query_store.get("q_astronaut"), reference_store.get("astronaut"), params)
        other = verify.verify_pair(query_store.get("q_motorcycle"), reference_store.get("astronaut"), params)
        assert copy.n_inliers >= 40 and not copy.flipped
        assert other.n_inliers <= 8
        assert copy.n_inliers <= copy.n_matches

    def test_mirrored_copy_is_found_by_the_mirrored_pass(self, reference_store, query_store):
        query, reference = query_store.get("q_coffee_mirrored"), reference_store.get("coffee")
        plain = verify.verify_pair(query, reference, verify.VerifyParams(mirrored=False))
        both = verify.verify_pair(query, reference, verify.VerifyParams())
        assert both.flipped and both.n_inliers >= 40
        assert both.n_inliers > 4 * max(plain.n_inliers, 1)

    def test_ratio_test_is_stricter_with_lower_ratio(self, reference_store, query_store):
        q, r = query_store.get("q_astronaut"), reference_store.get("astronaut")
        loose, _ = verify.ratio_matches(q.descriptors, r.descriptors, 0.9)
        strict, _ = verify.ratio_matches(q.descriptors, r.descriptors, 0.6)
        assert len(strict) < len(loose)

    def test_duplicate_positions_count_once(self):
        points = np.array([[10, 10, 1, 0], [10.2, 9.9, 1, 90], [50, 50, 1, 0]], np.float32)
        q_idx, r_idx = verify.unique_positions(np.array([0, 1, 2]), np.array([0, 1, 2]), points, points)
        assert q_idx.tolist() == [0, 2] and r_idx.tolist() == [0, 2]

    def test_verify_pairs_writes_the_score_schema(self, reference_store, query_store):
        pairs = pd.DataFrame({"query_id": ["q_astronaut", "q_motorcycle", "unknown"],
                              "reference_id": ["astronaut", "astronaut", "astronaut"]})
        scores = verify.verify_pairs(pairs, query_store, reference_store, verify.VerifyParams(), "local",
                                     progress=False)
        assert len(scores) == 2, "pairs whose features are absent are not scored"
        assert scores.set_index("query_id").score["q_astronaut"] > 5 * scores.set_index("query_id").score[
            "q_motorcycle"]

    def test_unknown_geometry_is_rejected(self):
        with pytest.raises(ValueError, match="geometry"):
            verify.VerifyParams(geometry="similarity")


def test_only_the_contrib_headless_opencv_is_installed():
    from importlib import metadata

    installed = {dist.metadata["Name"].lower() for dist in metadata.distributions()}
    shadowing = {"opencv-python", "opencv-contrib-python", "opencv-python-headless"} & installed
    assert "opencv-contrib-python-headless" in installed
    assert not shadowing, f"these wheels also provide cv2 and may shadow the contrib build: {shadowing}"
    assert hasattr(cv2, "ximgproc"), "cv2 is not the contrib build"
