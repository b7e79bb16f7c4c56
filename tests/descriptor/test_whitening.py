"""Whitening and background normalisation of global descriptors, on real photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from d2lv.descriptor import extract, search, whitening

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "camera", "coins", "moon", "brick", "grass")


@pytest.fixture(scope="module")
def descriptors() -> dict[str, np.ndarray]:
    """GeM descriptors of photos and of lightly edited copies (80% crop, resized)."""
    images = [getattr(data, name)() for name in PHOTOS]
    images = [np.stack([im] * 3, axis=-1) if im.ndim == 2 else im[..., :3] for im in images]
    copies = []
    for im in images[:4]:
        h, w = im.shape[:2]
        crop = Image.fromarray(im[h // 10: h - h // 10, w // 10: w - w // 10]).resize((w // 2, h // 2))
        copies.append(np.asarray(crop))
    model = extract.DescriptorModel(device="cpu", image_size=128)
    return {"photos": model.extract(images, progress=False), "copies": model.extract(copies, progress=False)}


def test_whitening_projects_to_unit_vectors_of_the_requested_size(descriptors):
    fitted = whitening.fit_whitening(descriptors["photos"], dim=64)
    out = fitted.apply(descriptors["copies"])
    assert out.shape == (4, 64) and fitted.dim == 64
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_whitening_keeps_copies_nearest_their_originals(descriptors):
    fitted = whitening.fit_whitening(descriptors["photos"], dim=8)
    similarity = fitted.apply(descriptors["copies"]) @ fitted.apply(descriptors["photos"]).T
    assert (similarity.argmax(axis=1) == np.arange(4)).all()


def test_whitening_decorrelates_its_training_set(descriptors):
    x = descriptors["photos"]
    fitted = whitening.fit_whitening(x, dim=4, shrinkage=0.0)
    projected = (x - fitted.mean) @ fitted.projection
    np.testing.assert_allclose(np.cov(projected, rowvar=False), np.eye(4), atol=1e-3)


def test_whitening_round_trip_and_errors(descriptors, tmp_path):
    fitted = whitening.fit_whitening(descriptors["photos"], dim=16)
    whitening.write_whitening(tmp_path / "w.h5", fitted, n_train=12)
    back = whitening.read_whitening(tmp_path / "w.h5")
    np.testing.assert_array_equal(back.projection, fitted.projection)
    with pytest.raises(ValueError, match="at least 2"):
        whitening.fit_whitening(descriptors["photos"][:1])
    with pytest.raises(ValueError, match="dimensions"):
        whitening.fit_whitening(descriptors["photos"], dim=5000)


def test_background_normalisation_subtracts_each_querys_kth_background_similarity(descriptors):
    queries, photos = descriptors["copies"], descriptors["photos"]
    bg = photos[6:]  # photos no query was made from
    kth = search.kth_background_similarity(queries, bg, k=2)
    expected = np.sort(queries @ bg.T, axis=1)[:, -2]
    np.testing.assert_allclose(kth, expected, atol=1e-5)
    pairs = pd.DataFrame({"query_id": ["q0", "q1", "q1"], "reference_id": ["a", "a", "b"],
                          "similarity": np.float32([0.9, 0.8, 0.5]), "rank": [1, 1, 2]})
    out = search.normalise(pairs, ["q0", "q1"], np.array([0.5, 0.2]), beta=1.0)
    np.testing.assert_allclose(out.similarity, [0.4, 0.6, 0.3], atol=1e-6)
    with pytest.raises(ValueError, match="background_k"):
        search.kth_background_similarity(queries, bg[:1], k=2)


def test_a_descriptor_whitened_alone_gets_the_bits_it_gets_in_a_batch():
    rng = np.random.default_rng(0)
    fitted = whitening.fit_whitening(rng.normal(size=(1500, 1280)), dim=256)
    rows = rng.normal(size=(700, 1280)).astype(np.float32)
    batch = fitted.apply(rows)
    assert batch.dtype == np.float32 and batch.shape == (700, 256)
    for i in range(len(rows)):
        assert np.array_equal(fitted.apply(rows[i:i + 1])[0], batch[i]), f"row {i}"
