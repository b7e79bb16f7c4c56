"""DISC21-shaped benchmarks: families, hard negatives, boxes, near-duplicates, same-object groups."""

import functools
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import BENCH_PHOTOS, UKBENCH_PHOTOS, read_csv_rows, written_files
from PIL import Image

from d2lv.io.images import ImageError
from d2lv.synth import benchmark, photos
from d2lv.synth.families import FAMILIES
from d2lv.synth.photos import Tile, load_source

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
_PLACING_STEPS = ("pad", "pad_square", "pad_blur", "pad_photo", "overlay_onto_background_image",
                  "overlay_onto_screenshot", "meme_format")


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _thumb(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("L").resize((24, 24), Image.BILINEAR), dtype=np.float64).ravel()
    return (a - a.mean()) / (a.std() + 1e-9)


def _identify(path: Path, sources: list[Path]) -> Path:
    """The source photo that ``path`` (an unedited or lightly edited image) shows."""
    target = _thumb(Image.open(path))
    scores = [float(target @ _thumb(Image.open(s))) / target.size for s in sources]
    assert max(scores) > 0.9
    return sources[int(np.argmax(scores))]


def _check_bench(out: Path, n_references: int, n_copies: int, n_noncopies: int, n_hard_negatives: int,
                 families: tuple[str, ...] = tuple(FAMILIES)) -> list[dict[str, str]]:
    files = written_files(out)
    assert len(files["references"]) == n_references
    assert len(files["queries"]) == n_copies + n_noncopies + n_hard_negatives
    for path in files["references"] + files["queries"]:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            img.load()

    truth = read_csv_rows(out / "ground_truth.csv")
    categories = read_csv_rows(out / "categories.csv")
    assert list(truth[0]) == ["query_id", "reference_id"]
    assert list(categories[0]) == ["query_id", *benchmark.BENCH_CATEGORY_COLUMNS]
    assert [row["query_id"] for row in truth] == [p.stem for p in files["queries"]]
    reference_ids = {p.stem for p in files["references"]}
    kinds = {}
    for cat, gt in zip(categories, truth, strict=True):
        assert cat["query_id"] == gt["query_id"]
        kinds.setdefault(cat["kind"], []).append(cat)
        if cat["kind"] == "copy":
            assert gt["reference_id"] in reference_ids and not cat["similar_reference_id"]
        else:
            assert gt["reference_id"] == ""
        if cat["kind"] == "hard_negative":
            assert cat["similar_reference_id"] in reference_ids
            assert cat["recipe"] in benchmark.HARD_NEGATIVE_EDITS
        box = [cat[f"box_{c}"] for c in ("x0", "y0", "x1", "y1")]
        placed = any(step in cat["steps"].split("+") for step in _PLACING_STEPS)
        assert (box != ["", "", "", ""]) == placed
        if placed:
            x0, y0, x1, y1 = map(int, box)
            with Image.open(out / "queries" / f"{cat['query_id']}.jpg") as img:
                assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
    copies = [gt["reference_id"] for gt in truth if gt["reference_id"]]
    assert len(copies) == len(set(copies)) == n_copies
    assert len(kinds.get("noncopy", [])) == n_noncopies
    assert len(kinds.get("hard_negative", [])) == n_hard_negatives
    for kind, n in (("copy", n_copies), ("noncopy", n_noncopies)):  # families evenly spread
        counts = {f: sum(c["recipe"] == f for c in kinds.get(kind, [])) for f in families}
        assert sum(counts.values()) == n and max(counts.values()) - min(counts.values()) <= 1
    return categories



@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # AugLy uses np.matrix
def test_make_bench_writes_a_consistent_benchmark(bench_sources, tmp_path):
    n_families = len(FAMILIES)
    benchmark.make_bench(bench_sources, tmp_path, n_references=14, n_copies=n_families, n_noncopies=n_families,
                         n_hard_negatives=3, max_side=300, seed=0, progress=False)
    _check_bench(tmp_path, 14, n_families, n_families, 3)
    for path in written_files(tmp_path)["references"]:
        assert max(Image.open(path).size) <= 300


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_make_bench_hard_negatives_show_a_reference_object_in_another_photo(bench_sources, tmp_path):
    benchmark.make_bench(bench_sources, tmp_path, n_references=10, n_copies=2, n_noncopies=3, n_hard_negatives=3,
                         families=["text"], seed=1, progress=False)
    ukbench = sorted(bench_sources[1].iterdir())
    group = {p: int(p.stem[-5:]) // 4 for p in ukbench}
    truth = {row["query_id"]: row["reference_id"] for row in read_csv_rows(tmp_path / "ground_truth.csv")}
    hard = [c for c in read_csv_rows(tmp_path / "categories.csv") if c["kind"] == "hard_negative"]
    assert len(hard) == 3 and not any(truth[c["query_id"]] for c in hard)
    partners = set()
    for cat in hard:
        shown = _identify(tmp_path / "references" / f"{cat['similar_reference_id']}.jpg", ukbench)
        queried = _identify(tmp_path / "queries" / f"{cat['query_id']}.jpg", ukbench)
        assert shown != queried and group[shown] == group[queried]
        partners.add(cat["similar_reference_id"])
    assert len(partners) == 3  # one object each


def test_bench_plan_keeps_objects_and_backgrounds_apart(bench_sources):
    sources = benchmark.collect_images(bench_sources)
    for seed in range(10):
        references, queries = benchmark.plan_bench(sources, 16, 11, 11, 2, tuple(FAMILIES),
                                                   np.random.default_rng(seed))
        assert len(set(references)) == 16
        reference_side = set(references)
        for q in queries:
            if q.kind == "copy":
                assert references[int(q.reference_id[1:])] == q.source
            else:
                assert q.source not in reference_side
            if q.kind == "hard_negative":
                partner = references[int(q.similar_reference_id[1:])]
                assert partner.name.startswith("ukbench") and partner != q.source
                assert int(partner.stem[-5:]) // 4 == int(q.source.stem[-5:]) // 4
            if q.background is not None:
                assert q.background not in reference_side and q.background != q.source
            assert (q.background is not None) == (q.family in ("paste", "padding", "combo"))
        # A UKBench object is either among the references or among the other photos, but for
        # the hard-negative pairs.
        hard = {q.source for q in queries if q.kind == "hard_negative"}
        used_elsewhere = {q.source for q in queries if q.kind == "noncopy"} | {q.background for q in queries}
        for g in range(len(UKBENCH_PHOTOS)):
            members = {p for p in sources if p.name.startswith("ukbench") and int(p.stem[-5:]) // 4 == g}
            if members & reference_side:
                assert not (members & used_elsewhere) - hard


def test_bench_plan_chooses_hard_negatives_by_default_up_to_a_fifth_of_the_noncopies(bench_sources):
    sources = benchmark.collect_images(bench_sources)
    plan = functools.partial(benchmark.plan_bench, sources, 10, 5, families=("mild",), rng=np.random.default_rng(0))
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=10, n_hard_negatives=None)[1]) == 2
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=20, n_hard_negatives=None)[1]) == 3  # 3 groups
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=10, n_hard_negatives=0)[1]) == 0


def test_make_bench_boxes_show_the_copied_reference(bench_sources, tmp_path):
    placing = ("padding", "paste", "screenshot", "meme")
    benchmark.make_bench(bench_sources, tmp_path, n_references=12, n_copies=12, n_noncopies=4, n_hard_negatives=0,
                         families=placing, seed=2, progress=False)
    truth = {row["query_id"]: row["reference_id"] for row in read_csv_rows(tmp_path / "ground_truth.csv")}
    for cat in read_csv_rows(tmp_path / "categories.csv"):
        assert cat["box_x0"] != ""
        if cat["kind"] != "copy":
            continue
        x0, y0, x1, y1 = (int(cat[f"box_{c}"]) for c in ("x0", "y0", "x1", "y1"))
        inside = Image.open(tmp_path / "queries" / f"{cat['query_id']}.jpg").crop((x0, y0, x1, y1))
        reference = Image.open(tmp_path / "references" / f"{truth[cat['query_id']]}.jpg")
        # Screenshots may crop the photo's centre to fill their slot.
        scale = min(reference.width / (x1 - x0), reference.height / (y1 - y0))
        cw, ch = (x1 - x0) * scale, (y1 - y0) * scale
        left, top = (reference.width - cw) / 2, (reference.height - ch) / 2
        centre = reference.crop((round(left), round(top), round(left + cw), round(top + ch)))
        assert float(_thumb(inside) @ _thumb(centre)) / 576 > 0.9, cat


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_make_bench_is_reproducible(bench_sources, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        benchmark.make_bench(bench_sources, tmp_path / name, n_references=10, n_copies=8, n_noncopies=8,
                             n_hard_negatives=1, seed=seed, progress=False)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    assert _file_bytes(tmp_path / "a") != _file_bytes(tmp_path / "c")


def test_make_bench_errors_say_what_is_missing(bench_sources, tmp_path):
    n_sources = 41 + 12
    with pytest.raises(ValueError, match=f"too few source images: found {n_sources}, need {n_sources + 1}"):
        benchmark.make_bench(bench_sources, tmp_path, n_references=n_sources - 3, n_copies=5, n_noncopies=5,
                             n_hard_negatives=3, progress=False)
    with pytest.raises(ValueError, match="too few same-object groups for 4 hard negatives: found 3"):
        benchmark.make_bench(bench_sources, tmp_path, n_references=10, n_copies=5, n_noncopies=5,
                             n_hard_negatives=4, progress=False)
    with pytest.raises(ValueError, match="unknown"):
        benchmark.make_bench(bench_sources, tmp_path, n_references=10, n_copies=5, n_noncopies=5,
                             families=["sepia"], progress=False)
    with pytest.raises(ValueError, match="n_copies"):
        benchmark.make_bench(bench_sources, tmp_path, n_references=4, n_copies=5, n_noncopies=5, progress=False)
    with pytest.raises(ValueError, match="outside the references to paste onto: found 0"):
        benchmark.make_bench(bench_sources[0], tmp_path, n_references=41, n_copies=5, n_noncopies=0,
                             families=["paste"], progress=False)


def test_same_object_groups_follow_ukbench_numbering(tmp_path):
    names = ["ukbench00000.jpg", "ukbench00003.jpg", "UKBENCH00004.png", "ukbench00005.jpg", "photo.jpg",
             "ukbench0001.jpg"]
    paths = [tmp_path / n for n in names] + [tmp_path / "other" / "ukbench00001.jpg"]
    units = {frozenset(p.relative_to(tmp_path).as_posix() for p in unit)
             for unit in benchmark.same_object_groups(paths)}
    assert units == {
        frozenset({"ukbench00000.jpg", "ukbench00003.jpg"}),
        frozenset({"UKBENCH00004.png", "ukbench00005.jpg"}),
        frozenset({"photo.jpg"}),
        frozenset({"ukbench0001.jpg"}),  # not five digits
        frozenset({"other/ukbench00001.jpg"}),  # another folder, another object
    }


def test_drop_near_duplicates_keeps_the_first_of_each_picture(bench_sources, tmp_path):
    sources = benchmark.collect_images(bench_sources)
    assert benchmark.drop_near_duplicates(sources) == sources  # the fixture's photos are all distinct
    original = Image.open(sources[5])
    original.resize((120, 90)).save(tmp_path / "smaller.jpg", quality=40)
    original.point(lambda v: min(255, v + 12)).save(tmp_path / "brighter.png")
    with_copies = [*sources[:8], tmp_path / "smaller.jpg", tmp_path / "brighter.png", *sources[8:]]
    assert benchmark.drop_near_duplicates(with_copies) == sources


def _skimage_photo(name: str) -> Image.Image:
    return Image.open(Path(skimage.data.__file__).parent / name).convert("RGB")


def test_drop_near_duplicates_drops_later_copies_of_real_photos_and_keeps_the_order(tmp_path):
    names = ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "coins.png", "rocket.jpg",
             "motorcycle_left.png", "motorcycle_right.png"]  # the motorcycles: a stereo pair, not one picture
    photos = {}
    for name in names:
        photos[name] = tmp_path / name
        _skimage_photo(name).save(photos[name])
    chelsea, coffee, rocket = (_skimage_photo(n) for n in ("chelsea.png", "coffee.png", "rocket.jpg"))
    chelsea.resize((chelsea.width // 2, chelsea.height // 2)).save(tmp_path / "chelsea_small.jpg", quality=30)
    w, h = coffee.size  # reframed: 2% cut off each side
    coffee.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(tmp_path / "coffee_reframed.jpg", quality=75)
    rocket.resize((rocket.width * 3 // 4, rocket.height * 3 // 4)).save(tmp_path / "rocket_copy.jpg", quality=50)

    distinct = [photos[n] for n in names]
    assert benchmark.drop_near_duplicates(distinct) == distinct
    mixed = [tmp_path / "rocket_copy.jpg", *distinct[:3], tmp_path / "chelsea_small.jpg", *distinct[3:],
             tmp_path / "coffee_reframed.jpg"]
    # The copy of the rocket comes first, so the original, later, is the one dropped.
    expected = [tmp_path / "rocket_copy.jpg", *(p for p in distinct if p.name != "rocket.jpg")]
    assert benchmark.drop_near_duplicates(mixed) == expected
    assert benchmark.drop_near_duplicates(mixed, max_distance=0) == mixed
    assert benchmark.drop_near_duplicates(mixed[:1]) == mixed[:1]
    assert benchmark.drop_near_duplicates([]) == []


def test_drop_near_duplicates_names_an_unreadable_file(bench_sources, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a JPEG")
    with pytest.raises(ImageError, match="broken.jpg"):
        benchmark.drop_near_duplicates([*benchmark.collect_images(bench_sources[1:]), broken])


@pytest.mark.skipif(not (SHARED_DATA / "ukbench").is_dir(), reason="shared UKBench photos not available")
def test_drop_near_duplicates_finds_the_known_duplicates_of_ukbench():
    folder = SHARED_DATA / "ukbench"
    # 00081/00522: one file twice; 00823/00911: one photo, reframed. 00820-00823: the monkey's
    # other photos, which are not copies.
    paths = [folder / f"ukbench{i:05d}.jpg" for i in (81, 820, 821, 822, 823, 522, 911, 1000)]
    kept = benchmark.drop_near_duplicates(paths)
    assert kept == [p for p in paths if p.stem not in ("ukbench00522", "ukbench00911")]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared photos not available")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_make_bench_on_shared_photos(tmp_path):
    folders = [SHARED_DATA / name for name in ("bsds500", "imagenet-sample", "ukbench")]
    n_families = len(FAMILIES)
    benchmark.make_bench(folders, tmp_path, n_references=30, n_copies=n_families, n_noncopies=n_families,
                         n_hard_negatives=4, seed=0, progress=False)
    _check_bench(tmp_path, 30, n_families, n_families, 4)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_without_same_object_groups_hard_negatives_are_the_other_half_of_a_reference_photo(bench_sources, tmp_path):
    photos = sorted(bench_sources[0].iterdir())
    benchmark.make_bench(bench_sources[0], tmp_path, n_references=20, n_copies=5, n_noncopies=5,
                         n_hard_negatives=4, progress=False)
    categories = _check_bench(tmp_path, 20, 5, 5, 4)
    tiles = [Tile(p, part) for p in photos for part in (0, 1)]
    for cat in categories:
        if cat["kind"] == "hard_negative" and cat["recipe"] == benchmark.NO_EDIT:
            reference = _identify_tile(tmp_path / "references" / f"{cat['similar_reference_id']}.jpg", tiles)
            query = _identify_tile(tmp_path / "queries" / f"{cat['query_id']}.jpg", tiles)
            assert reference.path == query.path and reference.part != query.part


def _identify_tile(path: Path, tiles: list[Tile]) -> Tile:
    target = _thumb(Image.open(path))
    scores = [float(target @ _thumb(load_source(t))) / target.size for t in tiles]
    assert max(scores) > 0.9
    return tiles[int(np.argmax(scores))]


def test_the_two_tiles_of_a_photo_share_no_pixel():
    for width, height in ((481, 321), (321, 481), (100, 100)):
        boxes = [photos.tile_box(width, height, part) for part in (0, 1)]
        (a0, b0, a1, b1), (c0, d0, c1, d1) = boxes
        assert a1 < c0 or b1 < d0  # a gap between them along the long side
        assert all(0 <= v for box in boxes for v in box) and max(c1, a1) <= width and max(d1, b1) <= height


def test_make_bench_leaves_the_training_split_out(tmp_path):
    folders = {name: tmp_path / "data" / name for name in ("ukbench", "bsds500/train", "bsds500/val", "imagenet")}
    for k, folder in enumerate(folders.values()):
        folder.mkdir(parents=True)
        for i, name in enumerate(BENCH_PHOTOS[:6]):
            Image.fromarray(getattr(skimage.data, name)()).rotate(90 * k).resize((96 + i, 80)).save(
                folder / f"{name}.jpg")
    training = [p for name in ("ukbench", "bsds500/train") for p in folders[name].iterdir()]
    assert all(photos.is_training_photo(p) for p in training)
    assert not any(photos.is_training_photo(p) for p in folders["bsds500/val"].iterdir())
    with pytest.raises(ValueError, match="training split.*--allow-training-photos"):
        benchmark.make_bench([folders["ukbench"], folders["bsds500/train"]], tmp_path / "out", n_references=2,
                             n_copies=1, n_noncopies=1, progress=False)
    out = tmp_path / "out"
    benchmark.make_bench(list(folders.values()), out, n_references=8, n_copies=4, n_noncopies=9,
                         families=["mild"], progress=False)
    _check_bench(out, 8, 4, 9, 1, families=("mild",))  # 4 photos outside the references, each edited 2-3 times
    with pytest.raises(ValueError, match="too few source images"):
        benchmark.make_bench(list(folders.values()), out, n_references=13, n_copies=4, n_noncopies=1, progress=False)
    benchmark.make_bench(list(folders.values()), out, n_references=13, n_copies=4, n_noncopies=1, families=["mild"],
                         training_photos=True, progress=False)
