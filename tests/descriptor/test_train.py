"""Contrastive fine-tuning: views, losses, a short run on real photos, its checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import save_photos
from PIL import Image

from d2lv.descriptor import checkpoints, extract, networks, train
from d2lv.io import manifest, tables
from d2lv.synth.families import random_copy_edit

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "cat")
SIZE = 64
DIM = 64


@pytest.fixture(scope="module")
def reference_paths(tmp_path_factory) -> list[Path]:
    """Eight real photos as JPEG files."""
    return save_photos(tmp_path_factory.mktemp("references"), PHOTOS)


def run(paths: list[Path], out: Path, **kwargs: object) -> train.TrainResult:
    settings = {"dim": DIM, "steps": 8, "batch_size": 8, "lr": 1e-4, "image_size": SIZE, "device": "cpu",
                "progress": False, "log_every": 0, **kwargs}
    return train.train_descriptor(paths, out, random_copy_edit, **settings)


@pytest.fixture(scope="module")
def trained(reference_paths, tmp_path_factory) -> train.TrainResult:
    return run(reference_paths, tmp_path_factory.mktemp("trained") / "descriptor.pt")


def test_training_runs_every_step_and_probes_views_it_never_trained_on(trained):
    assert len(trained.losses) == 8 and all(np.isfinite(trained.losses))
    assert np.isfinite([trained.probe_before, trained.probe_after]).all() and trained.images_per_second > 0
    recorded = torch.load(trained.checkpoint, weights_only=True)["training"]
    assert (recorded["probe_before"], recorded["probe_after"]) == (trained.probe_before, trained.probe_after)


def test_a_step_lowers_the_contrastive_loss_of_its_batch(reference_paths):
    """The optimiser step learns: repeated on one batch of views, it fits them."""
    torch.manual_seed(0)
    net, loaded = networks.load_descriptor_net(networks.DEFAULT_BACKBONE, None, torch.device("cpu"), dim=DIM)
    normalise = train.Normalise(networks.Preprocessing(SIZE, loaded.mean, loaded.std), torch.device("cpu"))
    dataset = train.TwoViews(reference_paths, SIZE, random_copy_edit)
    views = torch.stack([dataset[item] for item in train.batch_plan(len(reference_paths), 8, 1, seed=0)[0]])
    step = train._step_function(net, normalise, lr=1e-4, steps=4, temperature=train.DEFAULT_TEMPERATURE,
                                koleo_weight=0)
    losses = [step(views) for _ in range(4)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_trained_checkpoint_gives_unit_vectors_of_its_size(trained, astronaut, chelsea, coffee):
    model = extract.DescriptorModel(checkpoint=trained.checkpoint, device="cpu")
    assert (model.dim, model.image_size, model.gem_p) == (DIM, SIZE, networks.DEFAULT_GEM_P)
    vectors = model.extract([astronaut, chelsea, coffee], progress=False)
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    recorded = torch.load(trained.checkpoint, weights_only=True)
    assert recorded["format"] == checkpoints.TRAINED_FORMAT and recorded["training"]["steps"] == 8
    assert set(recorded["state_dict"]) >= {"projection.weight", "projection.bias"}


def test_a_run_without_projection_gives_the_backbones_descriptors(reference_paths, astronaut, tmp_path):
    result = run(reference_paths, tmp_path / "plain.pt", dim=0, steps=1, batch_size=4)
    model = extract.DescriptorModel(checkpoint=result.checkpoint, device="cpu")
    assert "projection.weight" not in torch.load(result.checkpoint, weights_only=True)["state_dict"]
    assert model.extract([astronaut], progress=False).shape == (1, 1280)  # EfficientNet-Lite0's features


def test_training_is_reproducible_whatever_the_workers(reference_paths, tmp_path):
    first = run(reference_paths, tmp_path / "a.pt", steps=2, batch_size=4)
    second = run(reference_paths, tmp_path / "b.pt", steps=2, batch_size=4, num_workers=2)
    assert first.losses == second.losses
    weights = [torch.load(r.checkpoint, weights_only=True)["state_dict"] for r in (first, second)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_training_continues_from_its_checkpoint(reference_paths, trained, tmp_path):
    result = run(reference_paths, tmp_path / "more.pt", checkpoint=trained.checkpoint, steps=1, koleo_weight=0)
    # the same probe views, so a run that starts from the trained weights measures where that one ended
    assert result.probe_before == pytest.approx(trained.probe_after, rel=1e-5)
    with pytest.raises(checkpoints.CheckpointError, match="64-d descriptors, not 32-d"):
        run(reference_paths, tmp_path / "other.pt", checkpoint=trained.checkpoint, dim=32)


def test_bad_inputs_are_refused(reference_paths, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        run(reference_paths[:1], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="TorchScript"):
        run(reference_paths, tmp_path / "x.pt", backbone=checkpoints.TORCHSCRIPT)
    missing = tmp_path / "no_weights.pth"
    with pytest.raises(checkpoints.CheckpointError, match="checkpoint not found") as err:
        run(reference_paths, tmp_path / "x.pt", checkpoint=missing)
    assert str(missing) in str(err.value) and "descriptor.checkpoint" in str(err.value)
    assert not (tmp_path / "x.pt").exists()


def test_batch_plan_takes_each_image_once_per_epoch():
    plan = train.batch_plan(10, 4, steps=6, seed=1)
    assert plan == train.batch_plan(10, 4, steps=6, seed=1)
    assert len(plan) == 6 and all(len(batch) == 4 for batch in plan)
    for epoch in (plan[0:2], plan[2:4], plan[4:6]):  # 2 batches an epoch; 2 images left out of each
        indices = [i for batch in epoch for i, _ in batch]
        assert len(set(indices)) == 8
    seeds = [s for batch in plan for _, s in batch]
    assert len(set(seeds)) == len(seeds)


def test_views_are_square_copies_drawn_from_their_seed(reference_paths):
    dataset = train.TwoViews(reference_paths, SIZE, random_copy_edit)
    views = dataset[(2, 123)]
    assert views.shape == (2, 3, SIZE, SIZE) and views.dtype == torch.uint8
    assert torch.equal(views, dataset[(2, 123)])
    assert not torch.equal(views[0], views[1]) and not torch.equal(views, dataset[(2, 124)])


def test_shrink_keeps_small_images_and_the_aspect_ratio():
    small = Image.new("RGB", (100, 50))
    assert train.shrink(small, 64) is small
    assert train.shrink(Image.new("RGB", (1000, 500)), 64).size == (128, 64)


def test_info_nce_prefers_matching_views():
    generator = torch.Generator().manual_seed(0)
    instances = train.view_instances(8, torch.device("cpu"))
    anchors = torch.nn.functional.normalize(torch.randn(8, 32, generator=generator), dim=1)
    matched = anchors.repeat_interleave(2, dim=0)  # both views of an image identical
    shuffled = torch.nn.functional.normalize(torch.randn(16, 32, generator=generator), dim=1)
    assert train.info_nce(matched, instances) < 0.1 < train.info_nce(shuffled, instances)


def test_koleo_rewards_spread_descriptors():
    generator = torch.Generator().manual_seed(0)
    instances = train.view_instances(8, torch.device("cpu"))
    spread = torch.nn.functional.normalize(torch.randn(16, 32, generator=generator), dim=1)
    clustered = torch.nn.functional.normalize(torch.ones(16, 32) + 0.05 * torch.randn(16, 32, generator=generator),
                                              dim=1)
    assert train.koleo(spread, instances) < train.koleo(clustered, instances)
    # the two views of one image may coincide without penalty
    assert torch.isfinite(train.koleo(spread.repeat_interleave(2, dim=0)[:16], instances))


def test_manifest_paths_keep_usable_images(reference_paths, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    frame = manifest.build_manifest([*reference_paths[:2], broken], progress=False)
    tables.write_table(frame, tmp_path / "manifest.parquet", tables.MANIFEST)
    assert train.manifest_paths([tmp_path / "manifest.parquet"]) == reference_paths[:2]
