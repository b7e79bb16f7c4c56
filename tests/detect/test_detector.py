"""The copy-region detector, offline: training through the CLI, detection, crops."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
from conftest import save_photos
from PIL import Image

from d2lv import cli
from d2lv.detect import runtime
from d2lv.detect.boxes import Detector, detect
from d2lv.detect.params import SHIPPED_WEIGHTS, BoxParams
from d2lv.io import manifest, tables
from d2lv.io.images import ImageError, box_iou, load_image
from d2lv.io.views import crop_id
from d2lv.synth.detector_set import paste_on_canvas

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")
SIZE = 128
DOWNLOADERS = ("safe_download", "attempt_download_asset", "download")


@pytest.fixture(scope="module")
def reference_paths(tmp_path_factory) -> list[Path]:
    """Six real photos as JPEG files."""
    return save_photos(tmp_path_factory.mktemp("references"), PHOTOS)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    """Ultralytics' settings folder: the first import in this process fixes it."""
    return tmp_path_factory.mktemp("ultralytics-config")


# --- training set ------------------------------------------------------------------------



def _refuse(attempts: list[str], what: str, real=None):
    """A stand-in that records the call and raises; ``real`` still serves files that exist locally."""

    def refuse(*args, **kwargs):
        if real is not None and args and Path(str(args[0])).is_file():
            return real(*args, **kwargs)
        attempts.append(f"{what}{args[:2]}")
        raise ConnectionError(f"test: {what} refused")

    return refuse


@pytest.fixture(scope="module")
def offline(config_dir):
    """Every Ultralytics download function and every internet socket raises, and is recorded
    (``attempt_download_asset`` of a local file, which downloads nothing, still works)."""
    attempts: list[str] = []
    runtime.offline_ultralytics(config_dir, quiet=True)
    import ultralytics.data.utils  # noqa: F401  (modules that bind download functions by name)
    import ultralytics.engine.trainer  # noqa: F401
    import ultralytics.models.yolo.detect  # noqa: F401
    import ultralytics.utils.checks  # noqa: F401

    with pytest.MonkeyPatch.context() as mp:
        for name, module in list(sys.modules.items()):
            if name.startswith("ultralytics"):
                for attribute in DOWNLOADERS:
                    if callable(getattr(module, attribute, None)):
                        real = getattr(module, attribute) if attribute == "attempt_download_asset" else None
                        mp.setattr(module, attribute, _refuse(attempts, attribute, real))
        mp.setattr(socket, "getaddrinfo", _refuse(attempts, "getaddrinfo"))
        real_connect = socket.socket.connect

        def connect(sock: socket.socket, address: object) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                _refuse(attempts, "connect")(address)
            real_connect(sock, address)

        mp.setattr(socket.socket, "connect", connect)
        yield attempts


def _manifest(paths: list[Path], out: Path) -> Path:
    tables.write_table(manifest.build_manifest(paths, progress=False), out, tables.MANIFEST)
    return out


@pytest.fixture(scope="module")
def weights(offline, reference_paths, config_dir, tmp_path_factory) -> Path:
    """One epoch on 16 synthesised images, through the CLI, with the network refused."""
    folder = tmp_path_factory.mktemp("detector")
    refs = _manifest(reference_paths, folder / "references.parquet")
    status = cli.main(["train-detector", str(refs), "-o", str(folder / "detector.pt"), "--work-dir",
                       str(folder / "work"), "--images", "16", "--epochs", "1", "--image-size", str(SIZE),
                       "--batch", "8", "--workers", "0", "--device", "cpu", "--quiet"])
    assert status == 0
    return folder / "detector.pt"


def test_training_writes_weights_without_touching_the_network(weights, offline, config_dir):
    assert weights.is_file() and weights.stat().st_size > 1_000_000
    assert offline == []
    assert (config_dir / "Ultralytics" / "settings.json").is_file()
    assert (weights.parent / "work" / "training-set" / "data.yaml").is_file()


def test_ultralytics_leaves_pillow_alone(offline, tmp_path):
    assert Image.open.__module__ == "PIL.Image"
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="unreadable"):
        load_image(tmp_path / "text.jpg")


@pytest.fixture(scope="module")
def queries(coffee, chelsea, astronaut, tmp_path_factory) -> list[Path]:
    """A photo pasted on a plain canvas, a full-frame photo, a photo upright only through its
    EXIF orientation, and a file that is no image."""
    folder = tmp_path_factory.mktemp("queries")
    pasted = paste_on_canvas(Image.fromarray(coffee), Image.new("RGB", (640, 480), (40, 90, 200)),
                             np.random.default_rng(0)).image
    pasted.save(folder / "pasted.png")
    Image.fromarray(astronaut).save(folder / "full.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(chelsea).save(folder / "rotated.jpg", quality=90, exif=exif)
    (folder / "broken.jpg").write_bytes(b"not an image")
    return [folder / name for name in ("pasted.png", "full.jpg", "rotated.jpg", "broken.jpg")]


@pytest.fixture(scope="module")
def detected(weights, queries, offline, config_dir, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    crops_dir = tmp_path_factory.mktemp("crops")
    (crops_dir / "broken.png").write_bytes(b"a stale crop")  # from an earlier run: must go
    (crops_dir / "broken").mkdir()
    (crops_dir / "broken" / "2.png").write_bytes(b"a stale second crop")
    frame = pd.DataFrame({"id": [p.stem for p in queries], "path": [str(p) for p in queries]})
    detector = Detector(weights, config_dir, BoxParams(confidence=0.0), image_size=SIZE, device="cpu")
    boxes, crops = detect(frame, detector, crops_dir, progress=False)
    return boxes, crops, crops_dir


def test_detect_tables_follow_their_schemas(detected, tmp_path):
    boxes, crops, _ = detected
    for frame, schema in ((boxes, tables.BOXES), (crops, tables.MANIFEST)):
        tables.write_table(frame, tmp_path / "t.parquet", schema)
        back = tables.read_tables([tmp_path / "t.parquet"], schema)
        assert list(back.columns) == schema.names and len(back) == len(frame)
    assert list(boxes.query_id.unique()) == ["pasted", "full", "rotated", "broken"]
    assert sorted(crops.id) == sorted(_crop_ids(boxes)) and (crops.status == "ok").all()


def _crop_ids(boxes: pd.DataFrame) -> list[str]:
    cropped = boxes[boxes.cropped]
    return [crop_id(query_id, int(rank)) for query_id, rank in zip(cropped.query_id, cropped["rank"])]


def test_detect_records_an_unreadable_image_as_no_box(detected):
    boxes, _, crops_dir = detected
    broken = boxes.set_index("query_id").loc["broken"]
    assert not broken.cropped and pd.isna(broken.x0) and pd.isna(broken.confidence)
    assert not (crops_dir / "broken.png").exists() and not (crops_dir / "broken" / "2.png").exists()


def test_detect_decodes_under_the_runs_pixel_limit(weights, queries, offline, config_dir, tmp_path):
    """The limit the manifest decoded a query under (decode.max_pixels), not the default: raised for large
    scans, the detector must see them too."""
    pasted = pd.DataFrame({"id": ["pasted"], "path": [str(queries[0])]})  # 640 x 480
    detector = Detector(weights, config_dir, BoxParams(confidence=0.0), image_size=SIZE, device="cpu")
    found = {limit: detect(pasted, detector, tmp_path / str(limit), progress=False, max_pixels=limit)[0]
             for limit in (640 * 480, 640 * 480 - 1)}
    assert found[640 * 480].cropped.all() and not found[640 * 480 - 1].cropped.any()


def test_detect_crops_are_lossless_boxes_of_the_upright_image(detected, queries):
    boxes, crops, crops_dir = detected
    assert boxes.cropped.any()
    paths = {p.stem: p for p in queries}
    assert boxes.groupby("query_id")["rank"].count().max() == BoxParams.max_crops  # at confidence 0
    for row in boxes.itertuples():
        if not row.cropped:
            assert not (crops_dir / f"{row.query_id}.png").exists()
            continue
        crop = crops_dir / f"{crop_id(row.query_id, row.rank)}.png"
        pixels = load_image(paths[row.query_id])  # the rotated query is 300 wide, 451 high once upright
        assert 0 <= row.x0 < row.x1 <= pixels.shape[1] and 0 <= row.y0 < row.y1 <= pixels.shape[0]
        assert 0 <= row.confidence <= 1
        np.testing.assert_array_equal(load_image(crop), pixels[row.y0:row.y1, row.x0:row.x1])
        entry = crops.set_index("id").loc[crop_id(row.query_id, row.rank)]
        assert (entry.width, entry.height) == (row.x1 - row.x0, row.y1 - row.y0)
        assert entry.path == str(crop) and entry.bytes == crop.stat().st_size


def test_detect_cli_writes_both_tables(weights, queries, config_dir, tmp_path):
    usable = _manifest(queries, tmp_path / "queries.parquet")
    status = cli.main(["detect", str(usable), "--weights", str(weights), "-o", str(tmp_path / "boxes.parquet"),
                       "--crops-manifest", str(tmp_path / "crops.parquet"), "--crops-dir", str(tmp_path / "crops"),
                       "--confidence", "0", "--image-size", str(SIZE), "--device", "cpu",
                       "--config-dir", str(config_dir), "--quiet"])
    assert status == 0
    boxes = tables.read_tables([tmp_path / "boxes.parquet"], tables.BOXES)
    crops = tables.read_tables([tmp_path / "crops.parquet"], tables.MANIFEST)
    assert list(boxes.query_id.unique()) == ["pasted", "full", "rotated"]  # the broken file is not usable
    assert sorted(crops.id) == sorted(_crop_ids(boxes))


def test_detect_cli_names_the_config_key_when_weights_are_missing(queries, tmp_path, capsys):
    usable = _manifest(queries[:1], tmp_path / "queries.parquet")
    status = cli.main(["detect", str(usable), "--weights", str(tmp_path / "missing.pt"), "-o",
                       str(tmp_path / "boxes.parquet"), "--crops-manifest", str(tmp_path / "crops.parquet"),
                       "--crops-dir", str(tmp_path / "crops"), "--quiet"])
    assert status == 2
    assert "detect.weights" in capsys.readouterr().err
    assert not (tmp_path / "boxes.parquet").exists()


# --- the shipped detector -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pasted_copies(tmp_path_factory) -> tuple[pd.DataFrame, np.ndarray]:
    """Each photo of :data:`PHOTOS` (none of them in the shipped detector's training set) pasted onto
    the next one, with its true box."""
    folder = tmp_path_factory.mktemp("pasted")
    rng = np.random.default_rng(3)
    paths, truth = [], []
    photo = lambda name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB")  # noqa: E731
    for name, canvas in zip(PHOTOS, PHOTOS[1:] + PHOTOS[:1]):
        edited = paste_on_canvas(photo(name), photo(canvas).resize((640, 480)), rng)
        edited.image.save(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
        truth.append(edited.box)
    frame = pd.DataFrame({"id": [p.stem for p in paths], "path": [str(p) for p in paths]})
    return frame, np.array(truth, float)


def test_shipped_detector_finds_copies_of_photos_it_never_saw(pasted_copies, offline, config_dir, tmp_path):
    assert SHIPPED_WEIGHTS.is_file() and SHIPPED_WEIGHTS.stat().st_size < 10_000_000
    frame, truth = pasted_copies
    boxes, _ = detect(frame, Detector(SHIPPED_WEIGHTS, config_dir, device="cpu"), tmp_path / "crops", progress=False)
    found = boxes.drop_duplicates("query_id").set_index("query_id").loc[frame.id]  # each query's first box
    iou = box_iou(truth, found[["x0", "y0", "x1", "y1"]].astype(float).fillna(0).to_numpy())
    assert (found.cropped.to_numpy() & (iou >= 0.5)).sum() >= len(frame) - 1, dict(zip(frame.id, iou.round(2)))


def test_a_querys_boxes_do_not_depend_on_the_other_images_of_its_batch(pasted_copies, offline, config_dir,
                                                                       tmp_path):
    """Alone, the same-shaped pasted copies would be letterboxed to their own rectangle; beside an image
    of another shape, to the square. Every batch is letterboxed to the square."""
    frame, _ = pasted_copies
    odd = tmp_path / "odd.jpg"
    Image.fromarray(skimage.data.astronaut()[:300]).save(odd)
    mixed = pd.concat([frame, pd.DataFrame({"id": ["odd"], "path": [str(odd)]})], ignore_index=True)
    detector = Detector(SHIPPED_WEIGHTS, config_dir, device="cpu")
    alone, _ = detect(frame, detector, tmp_path / "a", progress=False)
    beside, _ = detect(mixed, detector, tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(alone, beside[beside.query_id != "odd"].reset_index(drop=True), check_exact=True)


def test_training_goes_on_from_the_shipped_detector_by_default(weights):
    """detect.train_from: shipped. One epoch moves the weights little: they stay next to the shipped ones,
    where a network trained from scratch would share nothing with them."""
    import torch

    def first_conv(path: Path) -> torch.Tensor:
        model = torch.load(path, map_location="cpu", weights_only=False)["model"]
        return next(p for name, p in model.named_parameters() if name.endswith("conv.weight")).float().ravel()

    shipped, trained = first_conv(SHIPPED_WEIGHTS), first_conv(weights)
    assert torch.nn.functional.cosine_similarity(shipped, trained, dim=0) > 0.9
