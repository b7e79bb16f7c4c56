"""The copy-region detector: synthesised training set, box rule, offline training, detection, CLI."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import save_photos
from PIL import Image

from d2lv import cli
from d2lv.detect import detector
from d2lv.io import manifest, tables
from d2lv.io.images import ImageError, load_image

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


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@pytest.mark.parametrize("canvas", ["plain", "gradient"])
def test_paste_on_canvas_box_is_where_the_pixels_changed(canvas, coffee):
    rng = np.random.default_rng(3)
    background = (Image.new("RGB", (500, 400), (0, 255, 0)) if canvas == "plain"
                  else detector._gradient((500, 400), rng))
    for seed in range(5):
        out = detector.paste_on_canvas(Image.fromarray(coffee), background, np.random.default_rng(seed))
        changed = np.any(np.asarray(out.image) != np.asarray(background), axis=2)
        assert out.image.size == background.size
        assert _bbox(changed) == out.box
        x0, y0, x1, y1 = out.box
        assert 0.15 * 500 * 400 * 0.98 <= (x1 - x0) * (y1 - y0) <= 0.7 * 500 * 400


def _twins(paths: list[Path], folder: Path) -> list[Path]:
    """``paths`` with the first photo replaced by its negative: same sizes, every pixel different."""
    twin = folder / "negative.png"
    Image.fromarray(255 - load_image(paths[0])).save(twin)
    return [twin, *paths[1:]]


@pytest.mark.parametrize("kind", list(detector.POSITIVE_KINDS))
def test_positive_box_is_exactly_the_placed_photo(kind, reference_paths, tmp_path):
    """Made twice from the same seed, with and without the first photo negated: when that photo
    was placed, the pixels that differ fill exactly the box (but for borders made of the photo
    blurred); when the other one was (and the first was at most the backdrop), nothing inside the
    box differs."""
    paths = reference_paths[:2]
    placed_first = 0
    for seed in range(6):
        one, two = (detector.synthesise_example(p, kind, np.random.default_rng(seed), 2 * SIZE)
                    for p in (paths, _twins(paths, tmp_path)))
        assert one.box == two.box and one.image.size == two.image.size and one.box is not None
        changed = np.any(np.asarray(one.image) != np.asarray(two.image), axis=2)
        x0, y0, x1, y1 = one.box
        if changed[y0:y1, x0:x1].any():
            placed_first += 1
            if one.steps[0] != "pad_blur":
                assert _bbox(changed) == one.box, (seed, one.steps)
        assert 0 <= x0 < x1 <= one.image.width and 0 <= y0 < y1 <= one.image.height
    assert 0 < placed_first < 6  # both cases were checked


@pytest.mark.parametrize("kind", detector.NEGATIVE_KINDS)
def test_negatives_fill_the_frame_and_have_no_box(kind, reference_paths):
    out = detector.synthesise_example(reference_paths, kind, np.random.default_rng(1), 2 * SIZE)
    assert out.box is None and out.image.mode == "RGB"


def test_yolo_label_is_normalised_centre_and_size():
    assert detector.yolo_label((10, 20, 50, 100), (200, 100)) == "0 0.150000 0.600000 0.200000 0.800000\n"


@pytest.fixture(scope="module")
def training_set(reference_paths, tmp_path_factory) -> Path:
    return detector.synthesise_training_set(reference_paths, tmp_path_factory.mktemp("set"), 20, seed=0,
                                            image_size=SIZE // 2, progress=False)


def test_training_set_has_yolo_layout_and_data_yaml(training_set):
    spec = yaml.safe_load(training_set.read_text())
    root = Path(spec["path"])
    assert root.is_absolute() and root == training_set.parent
    assert spec["names"] == {0: detector.CLASS_NAME} and (spec["train"], spec["val"]) == ("images/train", "images/val")
    images = {split: sorted((root / "images" / split).glob("*.jpg")) for split in ("train", "val")}
    assert (len(images["train"]), len(images["val"])) == (18, 2)
    for split, files in images.items():
        assert sorted(p.stem for p in (root / "labels" / split).glob("*.txt")) == [p.stem for p in files]


def _labels(root: Path) -> dict[Path, str]:
    return {p: (root / "labels" / p.parent.name / f"{p.stem}.txt").read_text()
            for p in sorted((root / "images").rglob("*.jpg"))}


def test_training_set_labels_one_box_per_positive_and_none_per_negative(training_set):
    labels = _labels(training_set.parent)
    assert sum(text == "" for text in labels.values()) == 5  # 25% of 20
    for image, text in labels.items():
        with Image.open(image) as img:
            assert max(img.size) <= SIZE  # long side at most 2 * image_size
        if text:
            (line,) = text.splitlines()
            klass, *box = line.split()
            cx, cy, w, h = map(float, box)
            assert klass == "0" and 0 < w <= 1 and 0 < h <= 1
            for centre, side in ((cx, w), (cy, h)):
                assert -1e-6 <= centre - side / 2 and centre + side / 2 <= 1 + 1e-6
            assert w * h < 0.95  # the photo never fills the frame of a positive


def test_training_set_is_deterministic_given_seed(training_set, reference_paths, tmp_path):
    again = detector.synthesise_training_set(reference_paths, tmp_path, 20, seed=0, image_size=SIZE // 2,
                                             progress=False)
    digest = {p.relative_to(training_set.parent): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in training_set.parent.rglob("*") if p.suffix in (".jpg", ".txt")}
    assert digest == {p.relative_to(again.parent): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in again.parent.rglob("*") if p.suffix in (".jpg", ".txt")}


def test_training_set_needs_references_and_a_validation_image(reference_paths, tmp_path):
    with pytest.raises(ValueError, match="no reference images"):
        detector.synthesise_training_set([], tmp_path, 10, 0, SIZE)
    with pytest.raises(ValueError, match="at least 2"):
        detector.synthesise_training_set(reference_paths, tmp_path, 1, 0, SIZE)


# --- the box rule -------------------------------------------------------------------------


def test_choose_box_takes_the_most_confident_acceptable_box():
    boxes = np.array([[10, 10, 60, 60], [20, 20, 80, 70], [0, 0, 100, 100]], dtype=np.float32)
    scores = np.array([0.5, 0.7, 0.9])  # the most confident covers the whole frame: rejected
    assert detector.choose_box(boxes, scores, 100, 100, 0.25) == ((20, 20, 80, 70), pytest.approx(0.7))


def test_choose_box_clips_and_rounds():
    box, _ = detector.choose_box(np.array([[-5.4, 10.6, 70.5, 130.0]]), np.array([0.8]), 100, 120, 0.25)
    assert box == (0, 11, 70, 120)


@pytest.mark.parametrize(
    ("box", "score", "kept"),
    [
        ((10, 10, 60, 60), 0.3, True),
        ((10, 10, 60, 60), 0.2, False),  # below the confidence threshold
        ((0, 0, 92, 92), 0.9, True),  # 84.6% of the area
        ((0, 0, 93, 93), 0.9, False),  # 86.5%
        ((0, 10, 80, 30), 0.9, True),  # 4:1
        ((0, 10, 81, 30), 0.9, False),  # wider than 4:1
        ((10, 0, 30, 81), 0.9, False),  # taller than 1:4
        ((10, 10, 17, 60), 0.9, False),  # 7 px wide
        ((10, 10, 18, 30), 0.9, True),  # 8 px wide, 1:2.5
    ],
)
def test_choose_box_area_aspect_size_and_confidence_rules(box, score, kept):
    chosen = detector.choose_box(np.array([box], dtype=float), np.array([score]), 100, 100, 0.25)
    assert (chosen is not None) == kept
    if kept:
        assert chosen == (box, pytest.approx(score))


def test_choose_box_rules_are_parameters():
    box = np.array([[0, 0, 93, 93], [0, 10, 81, 30]], dtype=float)
    assert detector.choose_box(box[:1], np.array([0.9]), 100, 100, 0.25, max_area=0.9) is not None
    assert detector.choose_box(box[1:], np.array([0.9]), 100, 100, 0.25, max_aspect=5) is not None
    assert detector.choose_box(np.zeros((0, 4)), np.zeros(0), 100, 100, 0.25) is None


# --- training and detection, offline --------------------------------------------------------


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
    detector.offline_ultralytics(config_dir, quiet=True)
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
    pasted = detector.paste_on_canvas(Image.fromarray(coffee), Image.new("RGB", (640, 480), (40, 90, 200)),
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
    frame = pd.DataFrame({"id": [p.stem for p in queries], "path": [str(p) for p in queries]})
    boxes, crops = detector.detect(frame, weights, crops_dir, min_confidence=0.0, image_size=SIZE, device="cpu",
                                   progress=False, config_dir=config_dir)
    return boxes, crops, crops_dir


def test_detect_tables_follow_their_schemas(detected, tmp_path):
    boxes, crops, _ = detected
    for frame, schema in ((boxes, tables.BOXES), (crops, tables.MANIFEST)):
        tables.write_table(frame, tmp_path / "t.parquet", schema)
        back = tables.read_tables([tmp_path / "t.parquet"], schema)
        assert list(back.columns) == schema.names and len(back) == len(frame)
    assert list(boxes.query_id) == ["pasted", "full", "rotated", "broken"]
    assert set(crops.id) == set(boxes.query_id[boxes.cropped]) and (crops.status == "ok").all()


def test_detect_records_an_unreadable_image_as_no_box(detected):
    boxes, _, crops_dir = detected
    broken = boxes.set_index("query_id").loc["broken"]
    assert not broken.cropped and pd.isna(broken.x0) and pd.isna(broken.confidence)
    assert not (crops_dir / "broken.png").exists()


def test_detect_crops_are_lossless_boxes_of_the_upright_image(detected, queries):
    boxes, crops, crops_dir = detected
    assert boxes.cropped.any()
    paths = {p.stem: p for p in queries}
    for row in boxes.itertuples():
        crop = crops_dir / f"{row.query_id}.png"
        assert crop.exists() == row.cropped
        if not row.cropped:
            continue
        pixels = load_image(paths[row.query_id])  # the rotated query is 300 wide, 451 high once upright
        assert 0 <= row.x0 < row.x1 <= pixels.shape[1] and 0 <= row.y0 < row.y1 <= pixels.shape[0]
        assert 0 <= row.confidence <= 1
        np.testing.assert_array_equal(load_image(crop), pixels[row.y0:row.y1, row.x0:row.x1])
        entry = crops.set_index("id").loc[row.query_id]
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
    assert list(boxes.query_id) == ["pasted", "full", "rotated"]  # the broken file is not in the usable manifest
    assert sorted(crops.id) == sorted(boxes.query_id[boxes.cropped])


def test_detect_cli_names_the_config_key_when_weights_are_missing(queries, tmp_path, capsys):
    usable = _manifest(queries[:1], tmp_path / "queries.parquet")
    status = cli.main(["detect", str(usable), "--weights", str(tmp_path / "missing.pt"), "-o",
                       str(tmp_path / "boxes.parquet"), "--crops-manifest", str(tmp_path / "crops.parquet"),
                       "--crops-dir", str(tmp_path / "crops"), "--quiet"])
    assert status == 2
    assert "detect.weights" in capsys.readouterr().err
    assert not (tmp_path / "boxes.parquet").exists()
