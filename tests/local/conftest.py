"""Shared photos and feature stores of the local-branch tests: four references, three queries."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data

from d2lv.local import sift, store
from d2lv.local.params import SiftParams


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def features(image_id: str, image: np.ndarray, max_keypoints: int = 600) -> store.ImageFeatures:
    keypoints, descriptors = sift.extract(image, SiftParams(max_keypoints=max_keypoints))
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
    store.write_store(path, refs, dataclasses.asdict(SiftParams()))
    return store.FeatureStore(path)


@pytest.fixture(scope="module")
def query_store(photos, tmp_path_factory) -> store.FeatureStore:
    path = tmp_path_factory.mktemp("features") / "queries.h5"
    queries = [
        features("q_astronaut", rotated_crop(photos["astronaut"])),
        features("q_coffee_mirrored", np.ascontiguousarray(photos["coffee"][:, ::-1])),
        features("q_astronaut_negative", 255 - rotated_crop(photos["astronaut"])),
        features("q_motorcycle", photos["motorcycle"]),  # not a reference
    ]
    store.write_store(path, queries, dataclasses.asdict(SiftParams()))
    return store.FeatureStore(path)
