"""The hard benchmark: its edit families, its plan, and a tiny build in make_bench's layout."""

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import read_csv_rows, written_files
from PIL import Image

from d2lv.synth import hard_bench
from d2lv.synth.benchmark import BENCH_CATEGORY_COLUMNS, HARD_NEGATIVE_EDITS
from d2lv.synth.hard_families import HARD_FAMILIES, TONE_EDITS, apply_hard_family, text_line_boxes
from d2lv.synth.photos import Tile

SHARED_PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bsds500" / "val"
PLACING = ("small_paste", "collage", "screen_photo", "meme_screenshot", "paste_photo")


@pytest.fixture(scope="module")
def copy() -> Image.Image:
    """A non-square photo, so that a rotation or a transposition changes its shape."""
    return Image.fromarray(skimage.data.chelsea()).resize((300, 200))


def _backdrop() -> Image.Image:
    return Image.fromarray(skimage.data.coffee())


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def _correlation(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im.convert("L"), np.float64).ravel() for im in (a, b))
    return float(np.corrcoef(x, y)[0, 1])


@pytest.mark.parametrize("family", HARD_FAMILIES)
def test_each_family_edits_the_copy_reproducibly(family, copy):
    out, again = (apply_hard_family(family, copy, np.random.default_rng(7), _backdrop) for _ in range(2))
    assert out.image.mode == "RGB" and out.steps
    assert out.image.size != copy.size or np.abs(_pixels(out.image) - _pixels(copy)).mean() > 2
    assert np.array_equal(_pixels(out.image), _pixels(again.image)) and out.steps == again.steps
    assert out.box == again.box


def test_rotate_is_an_exact_right_angle_rotation(copy):
    angles = set()
    for seed in range(16):
        out = apply_hard_family("rotate", copy, np.random.default_rng(seed))
        k = {"rotate_90": 1, "rotate_180": 2, "rotate_270": 3}[out.steps[0]]
        assert np.array_equal(_pixels(out.image), np.rot90(_pixels(copy), k))
        angles.add(k)
    assert angles == {1, 2, 3}


def test_flip_turns_the_copy_upside_down_or_transposes_it(copy):
    for seed in range(4):
        out = apply_hard_family("flip", copy, np.random.default_rng(seed))
        expected = _pixels(copy)[::-1] if out.steps == ("vflip",) else _pixels(copy).transpose(1, 0, 2)
        assert np.array_equal(_pixels(out.image), expected)


@pytest.mark.parametrize("edit", TONE_EDITS)
def test_every_tone_edit_changes_the_tones_but_not_the_shape(edit, copy):
    out = TONE_EDITS[edit](copy, np.random.default_rng(0))
    assert out.size == copy.size and np.abs(_pixels(out) - _pixels(copy)).mean() > 10


@pytest.mark.parametrize("family", PLACING)
def test_placing_families_put_the_copy_in_a_larger_picture(family, copy):
    for seed in range(3):
        out = apply_hard_family(family, copy, np.random.default_rng(seed), _backdrop)
        x0, y0, x1, y1 = out.box
        assert 0 <= x0 < x1 <= out.image.width and 0 <= y0 < y1 <= out.image.height
        assert (x1 - x0) * (y1 - y0) < 0.95 * out.image.width * out.image.height


@pytest.mark.parametrize("family", ["small_paste", "collage"])
def test_pasted_copies_lie_exactly_in_their_box(family, copy):
    for seed in range(3):
        out = apply_hard_family(family, copy, np.random.default_rng(seed), _backdrop)
        shown = out.image.crop(out.box)
        assert _correlation(shown, copy.resize(shown.size)) > 0.95


def test_the_screen_photo_box_bounds_the_warped_screen(copy):
    """The same photo of a white and of a black screen differ where the screen shows the copy."""
    white, black = (apply_hard_family("screen_photo", Image.new("RGB", copy.size, (v,) * 3),
                                      np.random.default_rng(5), _backdrop) for v in (255, 0))
    assert white.box == black.box
    lit = np.abs(_pixels(white.image) - _pixels(black.image)).max(axis=2) > 60
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    found = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    assert np.abs(np.subtract(found, white.box)).max() <= 3


def test_small_crop_and_tiny_keep_a_small_part_or_a_thumbnail(copy):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        cropped = apply_hard_family("small_crop", copy, rng).image
        assert 0.07 <= cropped.width * cropped.height / (copy.width * copy.height) <= 0.26
        assert 96 <= max(apply_hard_family("tiny", copy, rng).image.size) <= 160


def test_heavy_text_covers_a_third_to_a_half_of_the_image_and_nothing_else(copy):
    for seed in range(4):
        boxes = text_line_boxes(copy.size, np.random.default_rng(seed))
        covered = np.zeros(copy.size[::-1], dtype=int)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] += 1
        assert covered.max() == 1 and 0.3 <= covered.mean() <= 0.5
        out = _pixels(apply_hard_family("heavy_text", copy, np.random.default_rng(seed)).image)
        changed = np.abs(out - _pixels(copy)).max(axis=2) > 0
        assert not changed[covered == 0].any() and changed[covered == 1].mean() > 0.02


def test_stacked_chains_four_families(copy):
    out = apply_hard_family("stacked", copy, np.random.default_rng(3))
    assert len(out.steps) >= 4 and out.box is None


def test_default_counts_follow_the_documented_shares():
    counts = hard_bench.HardCounts(1000, 700, 700)
    assert (counts.tile_references, counts.photo_references) == (500, 500)
    assert (counts.tile_copies, counts.photo_copies) == (467, 233)
    assert (counts.hard_negatives, counts.noncopy_graphics, counts.noncopy_photos) == (350, 175, 175)
    with pytest.raises(hard_bench.InputError, match="too few source photos"):
        counts.check(600)


def test_plan_pairs_each_hard_negative_with_the_other_tile_of_its_reference():
    photos = [Path(f"photo{i}.jpg") for i in range(20)]
    pictures = [Path(f"graphic{i}.png") for i in range(12)]
    fresh = [Path(f"fresh{i}.png") for i in range(3)]
    counts = hard_bench.HardCounts(24, 14, 12)
    references, queries, backdrops = hard_bench.plan_hard_bench(photos, pictures, fresh, counts,
                                                                np.random.default_rng(0))
    by_id = {f"R{i:06d}": source for i, source in enumerate(references)}
    assert len(references) == len(set(references)) == 24
    hard = [q for q in queries if q.kind == "hard_negative"]
    assert len(hard) == 6
    copied = {by_id[q.reference_id] for q in queries if q.kind == "copy"}
    for query in hard:
        reference = by_id[query.similar_reference_id]
        assert isinstance(reference, Tile) and reference.path == query.source.path
        assert reference.part != query.source.part and reference in copied
    assert not set(backdrops) & set(references)
    assert {q.source.path for q in queries if q.kind == "noncopy" and isinstance(q.source, Tile)} == set(fresh)


def _build(sources, out, wallpapers, monkeypatch) -> list:
    loaded = []
    load = hard_bench.load_source

    def recording(source, max_side=None):
        loaded.append(source)
        return load(source, max_side)

    monkeypatch.setattr(hard_bench, "load_source", recording)
    hard_bench.make_hard_bench(sources, out, wallpapers=wallpapers, n_references=20, n_copies=14, n_noncopies=6,
                               max_side=384, seed=1, progress=False)
    return loaded


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    """15 validation photos, and a training folder whose photos must not be used."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"no photos at {SHARED_PHOTOS}")
    root = tmp_path_factory.mktemp("photos")
    val, train = root / "bsds500" / "val", root / "bsds500" / "train"
    for folder, photos in ((val, sorted(SHARED_PHOTOS.glob("*.jpg"))[:15]), (train, [])):
        folder.mkdir(parents=True)
        for photo in photos:
            (folder / photo.name).symlink_to(photo)
    for name in ("rocket", "immunohistochemistry", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()).save(train / f"{name}.jpg")
    return [val, train]


def test_a_tiny_hard_bench_has_the_layout_and_the_roles(sources, tmp_path, monkeypatch):
    walls = tmp_path / "walls"
    walls.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(walls / "astronaut.png")
    out = tmp_path / "bench"
    loaded = _build(sources, out, walls, monkeypatch)
    files = written_files(out)
    assert len(files["references"]) == 20 and len(files["queries"]) == 20
    truth, categories = read_csv_rows(out / "ground_truth.csv"), read_csv_rows(out / "categories.csv")
    assert list(categories[0]) == ["query_id", *BENCH_CATEGORY_COLUMNS]
    references = {p.stem for p in files["references"]}
    copies = [(c, t) for c, t in zip(categories, truth, strict=True) if c["kind"] == "copy"]
    assert len(copies) == 14 and {t["reference_id"] for _, t in copies} <= references
    assert sorted(c["recipe"] for c, _ in copies) == sorted(HARD_FAMILIES)
    hard = [c for c in categories if c["kind"] == "hard_negative"]
    assert len(hard) == 3 and all(c["similar_reference_id"] in references for c in hard)
    assert all(c["recipe"] in HARD_NEGATIVE_EDITS for c in hard)
    for c in categories:
        if c["box_x0"]:
            with Image.open(out / "queries" / f"{c['query_id']}.jpg") as img:
                x0, y0, x1, y1 = (int(c[f"box_{k}"]) for k in ("x0", "y0", "x1", "y1"))
                assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
    paths = {source.path if isinstance(source, Tile) else source for source in loaded}
    assert walls / "astronaut.png" in paths
    assert not any("train" in path.parts for path in paths)


def test_the_same_seed_builds_the_same_bench(sources, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        _build(sources, out, None, monkeypatch)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
