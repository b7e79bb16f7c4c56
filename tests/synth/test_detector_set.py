"""The copy-region detector's training set: pastes on canvases, placing families, YOLO labels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import save_photos
from PIL import Image

from d2lv.io.images import load_image
from d2lv.synth import detector_set

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina")
SIZE = 128


@pytest.fixture(scope="module")
def reference_paths(tmp_path_factory) -> list[Path]:
    """Six real photos as JPEG files."""
    return save_photos(tmp_path_factory.mktemp("references"), PHOTOS)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@pytest.mark.parametrize("canvas", ["plain", "gradient"])
def test_paste_on_canvas_box_is_where_the_pixels_changed(canvas, coffee):
    rng = np.random.default_rng(3)
    background = (Image.new("RGB", (500, 400), (0, 255, 0)) if canvas == "plain"
                  else detector_set._gradient((500, 400), rng))
    for seed in range(5):
        out = detector_set.paste_on_canvas(Image.fromarray(coffee), background, np.random.default_rng(seed))
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


@pytest.mark.parametrize("kind", list(detector_set.POSITIVE_KINDS))
def test_positive_box_is_exactly_the_placed_photo(kind, reference_paths, tmp_path):
    """Made twice from the same seed, with and without the first photo negated: when that photo
    was placed, the pixels that differ fill exactly the box (but for borders made of the photo
    blurred); when the other one was (and the first was at most the backdrop), nothing inside the
    box differs."""
    paths = reference_paths[:2]
    placed_first = 0
    for seed in range(6):
        one, two = (detector_set.synthesise_example(p, kind, np.random.default_rng(seed), 2 * SIZE)
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


@pytest.mark.parametrize("kind", detector_set.NEGATIVE_KINDS)
def test_negatives_fill_the_frame_and_have_no_box(kind, reference_paths):
    out = detector_set.synthesise_example(reference_paths, kind, np.random.default_rng(1), 2 * SIZE)
    assert out.box is None and out.image.mode == "RGB"


def test_yolo_label_is_normalised_centre_and_size():
    assert detector_set.yolo_label((10, 20, 50, 100), (200, 100)) == "0 0.150000 0.600000 0.200000 0.800000\n"


@pytest.fixture(scope="module")
def training_set(reference_paths, tmp_path_factory) -> Path:
    return detector_set.synthesise_training_set(reference_paths, tmp_path_factory.mktemp("set"), 20, seed=0,
                                                image_size=SIZE // 2, progress=False)


def test_training_set_has_yolo_layout_and_data_yaml(training_set):
    spec = yaml.safe_load(training_set.read_text())
    root = Path(spec["path"])
    assert root.is_absolute() and root == training_set.parent
    assert spec["names"] == {0: detector_set.CLASS_NAME}
    assert (spec["train"], spec["val"]) == ("images/train", "images/val")
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
    again = detector_set.synthesise_training_set(reference_paths, tmp_path, 20, seed=0, image_size=SIZE // 2,
                                                 progress=False)
    digest = {p.relative_to(training_set.parent): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in training_set.parent.rglob("*") if p.suffix in (".jpg", ".txt")}
    assert digest == {p.relative_to(again.parent): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in again.parent.rglob("*") if p.suffix in (".jpg", ".txt")}


def test_training_set_needs_references_and_a_validation_image(reference_paths, tmp_path):
    with pytest.raises(ValueError, match="no reference images"):
        detector_set.synthesise_training_set([], tmp_path, 10, 0, SIZE)
    with pytest.raises(ValueError, match="at least 2"):
        detector_set.synthesise_training_set(reference_paths, tmp_path, 1, 0, SIZE)


# --- the box rule -------------------------------------------------------------------------
