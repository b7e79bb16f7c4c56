"""The demo set and the dev sets: layout, reproducibility, which photos become what."""

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import read_csv_rows, written_files
from PIL import Image

from d2lv.io.images import find_images, load_image
from d2lv.synth import demo, devset
from d2lv.synth.edits import RECIPES

BSDS500 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "bsds500"


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """20 small, distinct photos: four crops from each of five scikit-image photos."""
    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"):
        img = Image.fromarray(getattr(skimage.data, name)())
        w, h = img.size
        for i, (x, y) in enumerate([(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]):
            sub = root / ("a" if i < 2 else "b")
            sub.mkdir(exist_ok=True)
            img.crop((x, y, x + w // 2, y + h // 2)).resize((160, 120)).save(sub / f"{name}_{i}.jpg")
    return root


def _check_benchmark(out: Path, n_references: int, n_copies: int, n_noncopies: int) -> None:
    files = written_files(out)
    assert len(files["references"]) == n_references
    assert len(files["queries"]) == n_copies + n_noncopies
    for path in files["references"] + files["queries"]:
        assert load_image(path).shape[2] == 3

    truth = read_csv_rows(out / "ground_truth.csv")
    assert list(truth[0]) == ["query_id", "reference_id"]
    assert [row["query_id"] for row in truth] == [p.stem for p in files["queries"]]
    copies = [row["reference_id"] for row in truth if row["reference_id"]]
    assert len(copies) == n_copies
    assert len(set(copies)) == n_copies  # each copy of a distinct reference
    assert all((out / "references" / f"{ref}.jpg").is_file() for ref in copies)

    categories = read_csv_rows(out / "categories.csv")
    assert list(categories[0]) == ["query_id", "kind", "recipe"]
    for cat, gt in zip(categories, truth, strict=True):
        assert cat["query_id"] == gt["query_id"]
        assert cat["kind"] == ("copy" if gt["reference_id"] else "noncopy")
        assert all(name in RECIPES for name in cat["recipe"].split("+"))


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_make_demo_writes_a_consistent_benchmark(tmp_path):
    demo.make_demo(tmp_path)
    _check_benchmark(tmp_path, demo.DEMO_REFERENCES, demo.DEMO_COPIES, demo.DEMO_NONCOPIES)


def test_planned_demo_files_match_what_make_demo_writes(tmp_path):
    planned = demo.planned_demo_files(tmp_path)
    assert not (tmp_path / "queries").exists()
    demo.make_demo(tmp_path)
    assert planned == written_files(tmp_path)


def test_make_demo_is_reproducible(tmp_path):
    demo.make_demo(tmp_path / "a", seed=3)
    demo.make_demo(tmp_path / "b", seed=3)
    demo.make_demo(tmp_path / "c", seed=4)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    assert _file_bytes(tmp_path / "a") != _file_bytes(tmp_path / "c")


def test_demo_photos_are_shipped_with_scikit_image():
    assert len(demo.demo_photos()) == len(demo.DEMO_PHOTOS)


def test_make_devset_on_small_folder(photo_folder, tmp_path):
    devset.make_devset(photo_folder, tmp_path, n_references=8, n_copies=5, n_noncopies=6, seed=1)
    _check_benchmark(tmp_path, 8, 5, 6)


def test_make_devset_is_reproducible(photo_folder, tmp_path):
    for name in ("a", "b"):
        devset.make_devset(photo_folder, tmp_path / name, n_references=6, n_copies=3, n_noncopies=3, seed=5)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_rebuild_removes_stale_images(photo_folder, tmp_path):
    devset.make_devset(photo_folder, tmp_path, n_references=10, n_copies=5, n_noncopies=5)
    (tmp_path / "queries" / "notes.txt").write_text("kept")
    devset.make_devset(photo_folder, tmp_path, n_references=4, n_copies=2, n_noncopies=2)
    assert len(list(find_images(tmp_path / "queries"))) == 4
    assert len(list(find_images(tmp_path / "references"))) == 4
    assert (tmp_path / "queries" / "notes.txt").read_text() == "kept"


def test_noncopies_come_from_photos_outside_the_references(photo_folder):
    sources = list(find_images(photo_folder))
    references, queries = devset.plan_devset(sources, 8, 5, 12, np.random.default_rng(0))
    noncopy_sources = [q.source for q in queries if not q.reference_id]
    assert len(set(references)) == 8
    assert len(set(noncopy_sources)) == 12
    assert not set(noncopy_sources) & set(references)
    for q in queries:
        if q.reference_id:
            assert references[int(q.reference_id[1:])] == q.source


def test_too_few_source_images_is_a_clear_error(photo_folder, tmp_path):
    with pytest.raises(ValueError, match="too few source images: found 20, need 21"):
        devset.make_devset(photo_folder, tmp_path, n_references=15, n_copies=5, n_noncopies=6)


def test_more_copies_than_references_is_an_error(photo_folder, tmp_path):
    with pytest.raises(ValueError, match="n_copies"):
        devset.make_devset(photo_folder, tmp_path, n_references=3, n_copies=4, n_noncopies=1)


@pytest.mark.skipif(not BSDS500.is_dir(), reason="shared BSDS500 photos not available")
def test_make_devset_on_bsds500(tmp_path):
    devset.make_devset(BSDS500, tmp_path, n_references=12, n_copies=7, n_noncopies=7)
    _check_benchmark(tmp_path, 12, 7, 7)
