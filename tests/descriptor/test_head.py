"""The copy head: multi-layer pooling, head files, the training cache, training on it, the shipped head."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import save_photos

from d2lv import cli
from d2lv.descriptor import extract, head_cache, head_training, networks
from d2lv.descriptor.checkpoints import CheckpointError
from d2lv.descriptor.head import HEAD_FORMAT, CopyHead, HeadInput, load_head, save_head
from d2lv.descriptor.params import SHIPPED_HEAD
from d2lv.descriptor.train import Normalise
from d2lv.errors import InputError
from d2lv.synth.families import random_copy_edit

LAYER = "blocks.5"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field",
          "colorwheel", "camera", "coins", "brick", "page")
SIZE = 64
SETTINGS = head_cache.CacheSettings(networks.DEFAULT_BACKBONE, LAYER, SIZE, views=2, seed=0)


def normalised(model: extract.DescriptorModel, rgbs: list[np.ndarray]) -> torch.Tensor:
    """The network input of ``rgbs``, as extraction makes it."""
    batch = torch.from_numpy(np.stack([extract.resize_square(rgb, model.image_size) for rgb in rgbs]))
    normalise = Normalise(networks.Preprocessing(model.image_size, model.mean, model.std), model.device)
    return normalise(batch.permute(0, 3, 1, 2)[None])


@pytest.fixture(scope="module")
def model() -> extract.DescriptorModel:
    return extract.DescriptorModel(device="cpu")


def test_without_a_head_descriptors_are_the_unit_gem_of_the_last_map(model, photos):
    rgbs = list(photos.values())
    with torch.inference_mode():
        last = model.net.backbone.forward_features(normalised(model, rgbs)).float()
        expected = torch.nn.functional.normalize(networks.gem(last, networks.DEFAULT_GEM_P), dim=1).numpy()
    assert model.dim == 1280 and "head" not in model.attrs
    np.testing.assert_array_equal(model.extract(rgbs, progress=False), expected)


def test_multi_layer_pooling_joins_the_unit_gem_of_a_block_and_of_the_last_map(model, photos):
    multi = networks.PooledDescriptor(model.net.backbone, layer=LAYER).eval()
    with torch.inference_mode():
        x = normalised(model, list(photos.values()))
        pooled, last = multi.pool(x), model.net(x)
    assert multi.dim == 192 + 1280 and pooled.shape == (len(photos), multi.dim)
    np.testing.assert_allclose(pooled[:, :192].norm(dim=1), 1, atol=1e-5)
    np.testing.assert_allclose(pooled[:, 192:], torch.nn.functional.normalize(last, dim=1), atol=1e-6)
    with pytest.raises(CheckpointError, match="no layer"):
        networks.PooledDescriptor(model.net.backbone, layer="blocks.99")


def test_head_files_round_trip_and_other_files_are_refused(tmp_path):
    torch.manual_seed(0)
    head = CopyHead(20, 8, hidden=16, dropout=0.1).eval()
    source = HeadInput("tf_efficientnet_lite0", LAYER, 224, 3.0)
    save_head(tmp_path / "head.pt", head, source, {"steps": 5, "recall": {"head": {"pictures": 0.5}}})
    loaded = load_head(tmp_path / "head.pt")
    x = torch.randn(4, 20)
    with torch.no_grad():
        assert torch.equal(loaded.head(x), head(x))
    assert (loaded.input, loaded.training["steps"], loaded.head.hidden, loaded.head.dropout) == (source, 5, 16, 0.1)

    payload = torch.load(tmp_path / "head.pt", weights_only=True)
    for change, message in (({"format": "d2lv-descriptor"}, "not a d2lv copy head"), ({"version": 99}, "version 99"),
                            ({"out_dim": 9}, "incomplete or corrupt")):
        torch.save({**payload, **change}, tmp_path / "other.pt")
        with pytest.raises(CheckpointError, match=message):
            load_head(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="copy head not found"):
        load_head(tmp_path / "missing.pt")
    save_head(tmp_path / "other.pt", head, HeadInput("resnet18", "layer3", 224, 3.0))
    with pytest.raises(CheckpointError, match="trained on backbone 'resnet18'"):
        networks.load_descriptor_net(head=tmp_path / "other.pt")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The training cache of twelve real photos: three parts, an anchor and two edited views each, at 64 px."""
    folder = tmp_path_factory.mktemp("photos")
    paths = save_photos(folder, PHOTOS)
    head_cache.build_cache(folder / "cache.h5", paths, [random_copy_edit], SETTINGS, progress=False)
    return folder / "cache.h5", paths


def test_the_cache_holds_every_view_and_an_interrupted_one_continues_alike(cache, tmp_path, monkeypatch):
    path, paths = cache
    features = head_cache.read_cache(path).features
    assert features.shape == (len(PHOTOS), head_cache.PARTS, 3, 192 + 1280) and np.isfinite(features).all()
    interrupted = tmp_path / "interrupted.h5"
    interrupted.write_bytes(path.read_bytes())
    with h5py.File(interrupted, "a") as h5:
        h5.attrs["done"] = 4
        h5["features"][4:] = 0
    with pytest.raises(InputError, match="incomplete"):
        head_cache.read_cache(interrupted)
    monkeypatch.setattr(head_cache, "CHUNK_IMAGES", 4)
    head_cache.build_cache(interrupted, paths, [random_copy_edit], SETTINGS, progress=False)
    np.testing.assert_array_equal(head_cache.read_cache(interrupted).features, features)
    other = head_cache.CacheSettings(networks.DEFAULT_BACKBONE, LAYER, SIZE, views=3, seed=0)
    with pytest.raises(InputError, match="other images or settings"):
        head_cache.build_cache(interrupted, paths, [random_copy_edit], other, progress=False)


def margins(describe, instances: np.ndarray, view: int) -> np.ndarray:
    """For view ``view`` of each of ``instances [m, views, dim]`` (row 0: the anchor), described by
    ``describe``: its similarity to its own anchor minus its highest similarity to another anchor."""
    anchors, views = describe(instances[:, 0]), describe(instances[:, view])
    similarity = views @ anchors.T
    own = np.arange(len(anchors))
    mine = similarity[own, own].copy()
    similarity[own, own] = -np.inf
    return mine - similarity.max(axis=1)


def test_training_lowers_the_loss_and_brings_held_out_views_nearer_their_anchor(cache):
    """Trained on the anchor and first view of each instance, the head ranks the second views (edits it never
    saw) better than the multi-layer features it starts from and than its initial weights."""
    features = head_cache.read_cache(cache[0]).features
    settings = head_training.HeadSettings(dim=64, steps=100, batch_size=12, lr=3e-3, seed=0)
    torch.manual_seed(settings.seed)
    untrained = CopyHead(features.shape[-1], settings.dim, settings.hidden).eval()
    head, losses = head_training.train_head(features[:, :, :2], settings, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses
    pictures = features[:, 0]
    trained = margins(lambda x: head_training.head_descriptors(head, x), pictures, view=2).mean()
    assert trained > margins(head_training.unit, pictures, view=2).mean()
    assert trained > margins(lambda x: head_training.head_descriptors(untrained, x), pictures, view=2).mean()


def test_the_recall_table_measures_every_method_on_held_out_images(cache):
    features = head_cache.read_cache(cache[0]).features
    training, held = head_training.split_images(len(features), 1 / 3, seed=0)
    assert len(held) == 4 and sorted([*training, *held]) == list(range(len(features)))
    assert not set(held // head_training.SPLIT_RUN) & set(training // head_training.SPLIT_RUN)
    head = CopyHead(features.shape[-1], 32).eval()
    table = head_training.recall_table(features[held], head, last_dim=1280)
    assert set(table) == {"ImageNet GeM", "ImageNet GeM + PCA", "multi-layer GeM", "multi-layer GeM + PCA",
                          "head", "head + PCA"}
    assert all(set(row) == {"pictures", "halves"} and 0 <= r <= 1 for row in table.values() for r in row.values())
    assert table["ImageNet GeM"]["pictures"] >= 0.5  # mild edits of four distinct photos


def test_the_shipped_head_gives_unit_vectors_of_its_size(astronaut, chelsea):
    shipped = load_head(SHIPPED_HEAD)
    assert shipped.input.backbone == networks.DEFAULT_BACKBONE and shipped.head.out_dim == 256
    model = extract.DescriptorModel(device="cpu", head=SHIPPED_HEAD)
    vectors = model.extract([astronaut, chelsea], progress=False)
    assert vectors.shape == (2, 256) and model.attrs["head"] == str(SHIPPED_HEAD)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert torch.load(SHIPPED_HEAD, weights_only=True)["format"] == HEAD_FORMAT


def test_train_head_has_a_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["train-head", "--help"])
    assert exit_.value.code == 0 and "--views" in capsys.readouterr().out
