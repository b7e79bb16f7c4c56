"""Global descriptors of images: the packaged weights classify, copies are near, files round-trip, search ranks."""

from __future__ import annotations

import io
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from d2lv.descriptor import extract, networks, search, store
from d2lv.device import resolve_device
from d2lv.errors import InputError
from d2lv.io import tables


def jpeg(rgb: np.ndarray, quality: int = 50) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def crop(rgb: np.ndarray, keep: float = 0.8) -> np.ndarray:
    h, w = rgb.shape[:2]
    top, left = int(h * (1 - keep) / 2), int(w * (1 - keep) / 2)
    return rgb[top:top + int(h * keep), left:left + int(w * keep)]


@pytest.fixture(scope="module")
def model() -> extract.DescriptorModel:
    return extract.DescriptorModel(device="cpu")


@pytest.fixture(scope="module")
def references(model, photos) -> np.ndarray:
    return model.extract(list(photos.values()), progress=False)


def test_mapped_weights_classify_the_cat(chelsea):
    classifier = networks.load_backbone(classifier=True)
    mean = torch.tensor(networks.LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(networks.LITE_STD).view(1, 3, 1, 1)
    x = torch.from_numpy(extract.resize_square(chelsea, 224).copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        top = int(classifier((x - mean) / std).argmax())
    assert 281 <= top <= 285, f"ImageNet class {top} is not a cat: the weight mapping is wrong"


def test_descriptors_are_unit_vectors(model, references):
    assert model.dim == 1280
    assert references.shape == (5, 1280) and references.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(references, axis=1), 1.0, atol=1e-5)
    assert (references >= 0).all()  # GeM over ReLU6 features


def test_lightly_edited_copy_is_nearest_its_original(model, photos, references):
    copies = [jpeg(crop(rgb)) for rgb in photos.values()]
    similarity = model.extract(copies, progress=False) @ references.T
    assert (similarity.argmax(axis=1) == np.arange(len(photos))).all(), np.round(similarity, 3)
    others = similarity[~np.eye(len(photos), dtype=bool)].reshape(len(photos), -1)
    assert (np.diag(similarity) - others.max(axis=1) > 0.2).all(), np.round(similarity, 3)


def test_paths_and_arrays_and_batches_agree(model, chelsea, coffee, tmp_path):
    paths = []
    for name, rgb in {"chelsea": chelsea, "coffee": coffee}.items():
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(rgb).save(paths[-1])
    from_paths = model.extract(paths, batch_size=1, progress=False, workers=1)
    from_arrays = model.extract([chelsea, coffee], batch_size=2, progress=False)
    np.testing.assert_allclose(from_paths, from_arrays, atol=1e-4)


def test_isc_layout_round_trip(model, photos, references, tmp_path):
    ids = list(photos)
    queries = model.extract([jpeg(crop(p)) for p in photos.values()], progress=False)
    query_ids = [f"Q{i:05d}" for i in range(len(ids))]
    store.write_descriptor_shard(tmp_path / "q0.h5", "query", query_ids[:2], queries[:2], model.attrs)
    store.write_descriptor_shard(tmp_path / "q1.h5", "query", query_ids[2:], queries[2:], model.attrs)
    store.write_descriptor_shard(tmp_path / "r0.h5", "reference", ids, references, model.attrs)
    out = tmp_path / "isc.h5"
    store.combine_isc(out, [tmp_path / "q0.h5", tmp_path / "q1.h5"], [tmp_path / "r0.h5"])
    with h5py.File(out, "r") as h5:
        assert set(h5.keys()) == {"query", "reference", "query_ids", "reference_ids"}
        assert h5["query"].dtype == np.float32 and h5["query"].shape == (5, 1280)
        assert h5.attrs["backbone"] == "tf_efficientnet_lite0"
    got_ids, got = store.read_descriptors(out, "query")
    assert got_ids == query_ids
    np.testing.assert_array_equal(got, queries)
    got_ids, got = store.read_descriptors(out, "reference")
    assert got_ids == ids
    np.testing.assert_array_equal(got, references)
    with pytest.raises(InputError, match="reference"):
        store.read_descriptors(tmp_path / "q0.h5", "reference")


def test_search_top_k(model, photos, references, tmp_path):
    ids = list(photos)
    queries = model.extract([jpeg(crop(p)) for p in photos.values()], progress=False)
    query_ids = [f"q_{name}" for name in ids]
    pairs = search.search(query_ids, queries, ids, references, topk=3, progress=False)
    assert list(pairs.columns) == tables.SIMILARITY_PAIRS.names
    assert pairs.groupby("query_id").size().eq(3).all()
    best = pairs[pairs["rank"] == 1]
    assert (best.query_id.str.removeprefix("q_") == best.reference_id).all()
    for _, group in pairs.groupby("query_id"):
        assert group.sort_values("rank").similarity.is_monotonic_decreasing
    # references split in two shards, searched apart and gathered: same answer
    parts = [search.search(query_ids, queries, ids[:2], references[:2], topk=3, progress=False),
             search.search(query_ids, queries, ids[2:], references[2:], topk=3, progress=False)]
    gathered = search.rank_pairs(pd.concat(parts, ignore_index=True), topk=3)
    pd.testing.assert_frame_equal(gathered, pairs)
    tables.write_table(pairs, tmp_path / "descriptor.parquet", tables.SIMILARITY_PAIRS)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert resolve_device("cuda").type == "cpu"
        assert any("CUDA is not available" in str(w.message) for w in caught)
