"""Checkpoints of the descriptor network: packaged, EsViT/Swin, TorchScript and trained files load or are refused
clearly."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from d2lv.descriptor import checkpoints, extract, networks


def test_packaged_weights_map_onto_every_timm_weight():
    import timm

    path = checkpoints.packaged_checkpoint("tf_efficientnet_lite0")
    assert path is not None and path.is_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    converted = checkpoints.convert_lukemelas_state_dict(state, target)
    expected = target.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_weights.pth"
    for load in (lambda: networks.load_backbone(checkpoint=missing),
                 lambda: extract.DescriptorModel(checkpoint=missing),
                 lambda: extract.DescriptorModel(checkpoints.TORCHSCRIPT, missing)):
        with pytest.raises(checkpoints.CheckpointError, match="checkpoint not found") as err:
            load()
        assert str(missing) in str(err.value) and "descriptor.checkpoint" in str(err.value)


def test_checkpoint_lacking_weights_is_refused(tmp_path):
    state = torch.load(checkpoints.packaged_checkpoint("tf_efficientnet_lite0"), map_location="cpu", weights_only=True)
    del state["_blocks.3._project_conv.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(checkpoints.CheckpointError, match="1 missing") as err:
        networks.load_backbone(checkpoint=path)
    assert "conv_pwl.weight" in str(err.value)


def test_backbone_without_offline_weights_needs_a_checkpoint():
    with pytest.raises(checkpoints.CheckpointError, match="no offline weights"):
        networks.load_backbone("resnet18")


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(checkpoints.CheckpointError, match="cannot read checkpoint") as err:
        extract.DescriptorModel(checkpoint=path, device="cpu")
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- Swin / EsViT


SWIN = "swin_tiny_patch4_window7_224"


@pytest.fixture(scope="module")
def swin() -> torch.nn.Module:
    """A randomly initialised timm Swin-T, standing in for downloaded weights."""
    torch.manual_seed(0)
    return networks.create_backbone(SWIN).eval()


def to_reference_swin(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's Swin state dict in the reference implementation's layout: patch merging at the end of
    stage N-1 instead of the start of stage N, and the index buffers it saves (timm does not)."""
    reference = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        reference[".".join(parts)] = value
    for name, module in model.named_modules():
        if hasattr(module, "relative_position_index"):
            reference[f"{name}.relative_position_index"] = module.relative_position_index
    return reference


def esvit_checkpoint(model: torch.nn.Module) -> dict[str, object]:
    """What EsViT's ``checkpoint_best.pth`` holds: teacher and student (DDP-wrapped), each a backbone
    plus DINO heads, with the training arguments and other state beside them."""
    backbone = to_reference_swin(model.state_dict(), model)
    heads = {"head.mlp.0.weight": torch.randn(64, 768), "head.last_layer.weight_g": torch.ones(1024, 1),
             "head_dense.mlp.0.weight": torch.randn(64, 768)}
    teacher = {**{f"backbone.{k}": v for k, v in backbone.items()}, **heads}
    # a student that differs from the teacher: loading it would change the outputs
    student = {f"module.{k}": torch.zeros_like(v) for k, v in teacher.items()}
    return {"teacher": teacher, "student": student, "epoch": 300, "dino_loss": {"center": torch.zeros(1, 1024)},
            "args": argparse.Namespace(arch="swin_tiny", lr=0.0005, use_dense_prediction=True)}


@pytest.fixture(scope="module")
def esvit_path(swin, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("esvit") / "checkpoint_best.pth"
    torch.save(esvit_checkpoint(swin), path)
    return path


def test_wrappers_and_prefixes_are_removed():
    t = torch.zeros(1)
    student = {"module.backbone.x": t, "module.head.y": t}
    assert checkpoints.backbone_state_dict({"student": student, "epoch": 3}) == {"x": t}
    assert checkpoints.backbone_state_dict({"state_dict": {"module._orig_mod.x": t}, "optimizer": {}}) == {"x": t}
    assert checkpoints.backbone_state_dict({"model": {"x": t, "y": t}}) == {"x": t, "y": t}
    assert checkpoints.backbone_state_dict({"x": t, "step": 7}) == {"x": t}


def test_reference_swin_layout_maps_back_onto_timm(swin):
    reference = to_reference_swin(swin.state_dict(), swin)
    assert checkpoints.is_reference_swin(reference) and not checkpoints.is_reference_swin(swin.state_dict())
    converted = checkpoints.convert_swin_state_dict(reference)
    assert set(converted) - set(swin.state_dict()) == {k for k in converted if k.endswith("relative_position_index")}


def test_esvit_teacher_loads_with_identical_outputs(swin, esvit_path, astronaut, coffee):
    loaded = networks.load_backbone(SWIN, esvit_path)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(loaded.forward_features(x), swin.forward_features(x), rtol=0, atol=0)

    model = extract.DescriptorModel(SWIN, esvit_path, device="cpu")
    assert model.dim == 768 and model.gem_p == 1.0  # token features are signed: average them, as EsViT does
    batch = np.stack([extract.resize_square(rgb, 224) for rgb in (astronaut, coffee)])
    pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (networks.IMAGENET_MEAN, networks.IMAGENET_STD))
    normalised = (pixels - mean) / std
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(swin.forward_features(normalised).mean(dim=(1, 2)), dim=1)
    np.testing.assert_allclose(model.embed(batch), expected.numpy(), atol=1e-5)


def test_swin_checkpoint_lacking_weights_names_them(swin, tmp_path):
    checkpoint = esvit_checkpoint(swin)
    del checkpoint["teacher"]["backbone.layers.0.downsample.reduction.weight"]  # timm: layers.1.downsample
    del checkpoint["teacher"]["backbone.norm.weight"]
    path = tmp_path / "partial.pth"
    torch.save(checkpoint, path)
    with pytest.raises(checkpoints.CheckpointError, match="2 missing") as err:
        networks.load_backbone(SWIN, path)
    assert "layers.1.downsample.reduction.weight" in str(err.value) and "norm.weight" in str(err.value)
    assert "0 unexpected" in str(err.value)


def test_swin_checkpoint_of_another_size_is_refused(swin, esvit_path):
    with pytest.raises(checkpoints.CheckpointError, match="of the wrong shape"):
        networks.load_backbone("swin_small_patch4_window7_224", esvit_path)


def test_swin_needs_its_input_size(esvit_path):
    with pytest.raises(ValueError, match="descriptor.image_size"):
        extract.DescriptorModel(SWIN, esvit_path, device="cpu", image_size=160)


def test_esvit_window14_architectures():
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        swin_b = networks.create_backbone("swin_base_patch4_window14_224")
    assert swin_b.num_features == 1024
    windows = [stage.blocks[0].window_size for stage in swin_b.layers]
    assert windows == [(14, 14)] * 3 + [(7, 7)]  # the last stage has only 7x7 tokens
    assert swin_b.layers[3].blocks[0].attn.relative_position_bias_table.shape == (13 * 13, 32)


def test_unknown_backbone_names_the_config_key():
    with pytest.raises(checkpoints.CheckpointError, match="descriptor.backbone"):
        networks.create_backbone("no_such_net")


# --------------------------------------------------------------------------- TorchScript


class TinyDescriptor(torch.nn.Module):
    """Stands in for SSCD's TorchScript model: pools and projects itself, output not normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 5.0 * self.fc(self.conv(x).relu().mean(dim=(2, 3)))


def save_script(module: torch.nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 deprecates TorchScript
        torch.jit.script(module).save(str(path))


@pytest.fixture(scope="module")
def torchscript_path(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    module = TinyDescriptor().eval()
    path = tmp_path_factory.mktemp("ts") / "tiny.torchscript.pt"
    save_script(module, path)
    return path, module


def test_torchscript_model_gives_its_descriptors_normalised(torchscript_path, photos):
    path, module = torchscript_path
    model = extract.DescriptorModel(checkpoints.TORCHSCRIPT, path, device="cpu", image_size=64)
    assert model.dim == 16 and model.gem_p is None and model.mean == networks.IMAGENET_MEAN
    got = model.extract(list(photos.values()), progress=False)
    batch = np.stack([extract.resize_square(rgb, 64) for rgb in photos.values()])
    pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (networks.IMAGENET_MEAN, networks.IMAGENET_STD))
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(module((pixels - mean) / std), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert "gem_p" not in model.attrs and model.attrs["dim"] == 16


def test_torchscript_and_state_dict_files_are_not_confused(torchscript_path, esvit_path):
    path, _ = torchscript_path
    assert checkpoints.is_torchscript(path) and not checkpoints.is_torchscript(esvit_path)
    with pytest.raises(checkpoints.CheckpointError, match="descriptor.backbone: torchscript"):
        extract.DescriptorModel(checkpoint=path, device="cpu")
    with pytest.raises(checkpoints.CheckpointError, match="cannot load TorchScript"):
        extract.DescriptorModel(checkpoints.TORCHSCRIPT, esvit_path, device="cpu")
    with pytest.raises(checkpoints.CheckpointError, match="needs a TorchScript file"):
        extract.DescriptorModel(checkpoints.TORCHSCRIPT, device="cpu")


def test_torchscript_model_must_return_a_matrix(tmp_path):
    class Maps(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "maps.pt"
    save_script(Maps(), path)
    with pytest.raises(checkpoints.CheckpointError, match=r"\[batch, dim\]"):
        extract.DescriptorModel(checkpoints.TORCHSCRIPT, path, device="cpu", image_size=32)


# --------------------------------------------------------------------------- trained checkpoints


@pytest.fixture(scope="module")
def trained_path(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A backbone with a (random) 32-d projection saved as a trained checkpoint."""
    torch.manual_seed(0)
    net, preprocessing = networks.load_descriptor_net(dim=32)
    path = tmp_path_factory.mktemp("trained") / "descriptor.pt"
    networks.save_trained(path, net, networks.DEFAULT_BACKBONE,
                          networks.Preprocessing(96, preprocessing.mean, preprocessing.std), {"steps": 0})
    return path, net


def test_trained_checkpoint_round_trip(trained_path, photos):
    path, net = trained_path
    model = extract.DescriptorModel(checkpoint=path, device="cpu")
    assert (model.dim, model.image_size, model.gem_p, model.mean) == (32, 96, 3.0, networks.LITE_MEAN)
    got = model.extract(list(photos.values()), progress=False)
    assert got.shape == (len(photos), 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    batch = np.stack([extract.resize_square(rgb, 96) for rgb in photos.values()])
    x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255 - networks.LITE_MEAN[0]) / networks.LITE_STD[0]
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(net(x), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the fine-tuned backbone alone, e.g. for another head
    assert isinstance(networks.load_backbone(checkpoint=path), torch.nn.Module)


def test_trained_checkpoint_must_match_the_configured_backbone(trained_path):
    path, _ = trained_path
    with pytest.raises(checkpoints.CheckpointError, match="set descriptor.backbone: tf_efficientnet_lite0"):
        extract.DescriptorModel("efficientnet_b0", path, device="cpu")
    with pytest.raises(checkpoints.CheckpointError, match="32-d descriptors, not 64-d"):
        networks.load_descriptor_net(checkpoint=path, dim=64)


@pytest.mark.parametrize("damage", ["no dim", "no state", "bad version", "projection", "truncated"])
def test_damaged_trained_checkpoint_is_refused(trained_path, tmp_path, damage):
    path, _ = trained_path
    damaged = tmp_path / "damaged.pt"
    if damage == "truncated":
        damaged.write_bytes(path.read_bytes()[:100_000])
        expected = "cannot read checkpoint"
    else:
        checkpoint = torch.load(path, weights_only=True)
        if damage == "no dim":
            del checkpoint["dim"]
            expected = "incomplete or corrupt"
        elif damage == "no state":
            del checkpoint["state_dict"]
            expected = "incomplete or corrupt"
        elif damage == "bad version":
            checkpoint["version"] = 99
            expected = "version 99"
        else:
            del checkpoint["state_dict"]["projection.weight"]
            expected = r"1 missing \[projection.weight\]"
        torch.save(checkpoint, damaged)
    with pytest.raises(checkpoints.CheckpointError, match=expected) as err:
        extract.DescriptorModel(checkpoint=damaged, device="cpu")
    assert str(damaged) in str(err.value)
