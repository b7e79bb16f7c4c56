import csv
import functools
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import UKBENCH_PHOTOS
from PIL import Image

from d2lv.io.images import ImageError, find_images, load_image
from d2lv.synth import datasets
from d2lv.synth.edits import FAMILIES, RECIPES

BSDS500 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bsds500"


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


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _written_files(out: Path) -> dict[str, list[Path]]:
    return {
        "queries": sorted((out / "queries").iterdir()),
        "references": sorted((out / "references").iterdir()),
    }


def _check_benchmark(out: Path, n_references: int, n_copies: int, n_noncopies: int) -> None:
    files = _written_files(out)
    assert len(files["references"]) == n_references
    assert len(files["queries"]) == n_copies + n_noncopies
    for path in files["references"] + files["queries"]:
        assert load_image(path).shape[2] == 3

    truth = _read_csv(out / "ground_truth.csv")
    assert list(truth[0]) == ["query_id", "reference_id"]
    assert [row["query_id"] for row in truth] == [p.stem for p in files["queries"]]
    copies = [row["reference_id"] for row in truth if row["reference_id"]]
    assert len(copies) == n_copies
    assert len(set(copies)) == n_copies  # each copy of a distinct reference
    assert all((out / "references" / f"{ref}.jpg").is_file() for ref in copies)

    categories = _read_csv(out / "categories.csv")
    assert list(categories[0]) == ["query_id", "kind", "recipe"]
    for cat, gt in zip(categories, truth, strict=True):
        assert cat["query_id"] == gt["query_id"]
        assert cat["kind"] == ("copy" if gt["reference_id"] else "noncopy")
        assert all(name in RECIPES for name in cat["recipe"].split("+"))


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_make_demo_writes_a_consistent_benchmark(tmp_path):
    datasets.make_demo(tmp_path)
    _check_benchmark(tmp_path, datasets.DEMO_REFERENCES, datasets.DEMO_COPIES, datasets.DEMO_NONCOPIES)


def test_planned_demo_files_match_what_make_demo_writes(tmp_path):
    planned = datasets.planned_demo_files(tmp_path)
    assert not (tmp_path / "queries").exists()
    datasets.make_demo(tmp_path)
    assert planned == _written_files(tmp_path)


def test_make_demo_is_reproducible(tmp_path):
    datasets.make_demo(tmp_path / "a", seed=3)
    datasets.make_demo(tmp_path / "b", seed=3)
    datasets.make_demo(tmp_path / "c", seed=4)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    assert _file_bytes(tmp_path / "a") != _file_bytes(tmp_path / "c")


def test_demo_photos_are_shipped_with_scikit_image():
    assert len(datasets._demo_photos()) == len(datasets.DEMO_PHOTOS)


def test_make_devset_on_small_folder(photo_folder, tmp_path):
    datasets.make_devset(photo_folder, tmp_path, n_references=8, n_copies=5, n_noncopies=6, seed=1)
    _check_benchmark(tmp_path, 8, 5, 6)


def test_make_devset_is_reproducible(photo_folder, tmp_path):
    for name in ("a", "b"):
        datasets.make_devset(photo_folder, tmp_path / name, n_references=6, n_copies=3, n_noncopies=3, seed=5)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")


def test_rebuild_removes_stale_images(photo_folder, tmp_path):
    datasets.make_devset(photo_folder, tmp_path, n_references=10, n_copies=5, n_noncopies=5)
    (tmp_path / "queries" / "notes.txt").write_text("kept")
    datasets.make_devset(photo_folder, tmp_path, n_references=4, n_copies=2, n_noncopies=2)
    assert len(list(find_images(tmp_path / "queries"))) == 4
    assert len(list(find_images(tmp_path / "references"))) == 4
    assert (tmp_path / "queries" / "notes.txt").read_text() == "kept"


def test_noncopies_come_from_photos_outside_the_references(photo_folder):
    sources = list(find_images(photo_folder))
    references, queries = datasets._plan(sources, 8, 5, 12, np.random.default_rng(0))
    noncopy_sources = [q.source for q in queries if not q.reference_id]
    assert len(set(references)) == 8
    assert len(set(noncopy_sources)) == 12
    assert not set(noncopy_sources) & set(references)
    for q in queries:
        if q.reference_id:
            assert references[int(q.reference_id[1:])] == q.source


def test_too_few_source_images_is_a_clear_error(photo_folder, tmp_path):
    with pytest.raises(ValueError, match="too few source images: found 20, need 21"):
        datasets.make_devset(photo_folder, tmp_path, n_references=15, n_copies=5, n_noncopies=6)


def test_more_copies_than_references_is_an_error(photo_folder, tmp_path):
    with pytest.raises(ValueError, match="n_copies"):
        datasets.make_devset(photo_folder, tmp_path, n_references=3, n_copies=4, n_noncopies=1)


@pytest.mark.skipif(not BSDS500.is_dir(), reason="shared BSDS500 photos not available")
def test_make_devset_on_bsds500(tmp_path):
    datasets.make_devset(BSDS500, tmp_path, n_references=12, n_copies=7, n_noncopies=7)
    _check_benchmark(tmp_path, 12, 7, 7)


# --- make_bench (DISC21-shaped benchmark) ---------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_PLACING_STEPS = ("pad", "pad_square", "pad_blur", "pad_photo", "overlay_onto_background_image",
                  "overlay_onto_screenshot", "meme_format")


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
    files = _written_files(out)
    assert len(files["references"]) == n_references
    assert len(files["queries"]) == n_copies + n_noncopies + n_hard_negatives
    for path in files["references"] + files["queries"]:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            img.load()

    truth = _read_csv(out / "ground_truth.csv")
    categories = _read_csv(out / "categories.csv")
    assert list(truth[0]) == ["query_id", "reference_id"]
    assert list(categories[0]) == ["query_id", *datasets.BENCH_CATEGORY_COLUMNS]
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
            assert cat["recipe"] in datasets.HARD_NEGATIVE_EDITS
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
    datasets.make_bench(bench_sources, tmp_path, n_references=14, n_copies=n_families, n_noncopies=n_families,
                        n_hard_negatives=3, max_side=300, seed=0, progress=False)
    _check_bench(tmp_path, 14, n_families, n_families, 3)
    for path in _written_files(tmp_path)["references"]:
        assert max(Image.open(path).size) <= 300


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_make_bench_hard_negatives_show_a_reference_object_in_another_photo(bench_sources, tmp_path):
    datasets.make_bench(bench_sources, tmp_path, n_references=10, n_copies=2, n_noncopies=3, n_hard_negatives=3,
                        families=["text"], seed=1, progress=False)
    ukbench = sorted(bench_sources[1].iterdir())
    group = {p: int(p.stem[-5:]) // 4 for p in ukbench}
    truth = {row["query_id"]: row["reference_id"] for row in _read_csv(tmp_path / "ground_truth.csv")}
    hard = [c for c in _read_csv(tmp_path / "categories.csv") if c["kind"] == "hard_negative"]
    assert len(hard) == 3 and not any(truth[c["query_id"]] for c in hard)
    partners = set()
    for cat in hard:
        shown = _identify(tmp_path / "references" / f"{cat['similar_reference_id']}.jpg", ukbench)
        queried = _identify(tmp_path / "queries" / f"{cat['query_id']}.jpg", ukbench)
        assert shown != queried and group[shown] == group[queried]
        partners.add(cat["similar_reference_id"])
    assert len(partners) == 3  # one object each


def test_bench_plan_keeps_objects_and_backgrounds_apart(bench_sources):
    sources = datasets._collect_images(bench_sources)
    for seed in range(10):
        references, queries = datasets._plan_bench(sources, 16, 11, 11, 2, tuple(FAMILIES),
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
    sources = datasets._collect_images(bench_sources)
    plan = functools.partial(datasets._plan_bench, sources, 10, 5, families=("mild",), rng=np.random.default_rng(0))
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=10, n_hard_negatives=None)[1]) == 2
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=20, n_hard_negatives=None)[1]) == 3  # 3 groups
    assert sum(q.kind == "hard_negative" for q in plan(n_noncopies=10, n_hard_negatives=0)[1]) == 0


def test_make_bench_boxes_show_the_copied_reference(bench_sources, tmp_path):
    placing = ("padding", "paste", "screenshot", "meme")
    datasets.make_bench(bench_sources, tmp_path, n_references=12, n_copies=12, n_noncopies=4, n_hard_negatives=0,
                        families=placing, seed=2, progress=False)
    truth = {row["query_id"]: row["reference_id"] for row in _read_csv(tmp_path / "ground_truth.csv")}
    for cat in _read_csv(tmp_path / "categories.csv"):
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
        datasets.make_bench(bench_sources, tmp_path / name, n_references=10, n_copies=8, n_noncopies=8,
                            n_hard_negatives=1, seed=seed, progress=False)
    assert _file_bytes(tmp_path / "a") == _file_bytes(tmp_path / "b")
    assert _file_bytes(tmp_path / "a") != _file_bytes(tmp_path / "c")


def test_make_bench_errors_say_what_is_missing(bench_sources, tmp_path):
    n_sources = 41 + 12
    with pytest.raises(ValueError, match=f"too few source images: found {n_sources}, need {n_sources + 1}"):
        datasets.make_bench(bench_sources, tmp_path, n_references=30, n_copies=5, n_noncopies=n_sources - 32,
                            n_hard_negatives=3, progress=False)
    with pytest.raises(ValueError, match="too few same-object groups for 4 hard negatives: found 3"):
        datasets.make_bench(bench_sources, tmp_path, n_references=10, n_copies=5, n_noncopies=5,
                            n_hard_negatives=4, progress=False)
    with pytest.raises(ValueError, match="unknown"):
        datasets.make_bench(bench_sources, tmp_path, n_references=10, n_copies=5, n_noncopies=5,
                            families=["sepia"], progress=False)
    with pytest.raises(ValueError, match="n_copies"):
        datasets.make_bench(bench_sources, tmp_path, n_references=4, n_copies=5, n_noncopies=5, progress=False)
    with pytest.raises(ValueError, match="outside the references to paste onto: found 0"):
        datasets.make_bench(bench_sources[0], tmp_path, n_references=41, n_copies=5, n_noncopies=0,
                            families=["paste"], progress=False)


def test_same_object_groups_follow_ukbench_numbering(tmp_path):
    names = ["ukbench00000.jpg", "ukbench00003.jpg", "UKBENCH00004.png", "ukbench00005.jpg", "photo.jpg",
             "ukbench0001.jpg"]
    paths = [tmp_path / n for n in names] + [tmp_path / "other" / "ukbench00001.jpg"]
    units = {frozenset(p.relative_to(tmp_path).as_posix() for p in unit) for unit in datasets.same_object_groups(paths)}
    assert units == {
        frozenset({"ukbench00000.jpg", "ukbench00003.jpg"}),
        frozenset({"UKBENCH00004.png", "ukbench00005.jpg"}),
        frozenset({"photo.jpg"}),
        frozenset({"ukbench0001.jpg"}),  # not five digits
        frozenset({"other/ukbench00001.jpg"}),  # another folder, another object
    }


def test_drop_near_duplicates_keeps_the_first_of_each_picture(bench_sources, tmp_path):
    sources = datasets._collect_images(bench_sources)
    assert datasets.drop_near_duplicates(sources) == sources  # the fixture's photos are all distinct
    original = Image.open(sources[5])
    original.resize((120, 90)).save(tmp_path / "smaller.jpg", quality=40)
    original.point(lambda v: min(255, v + 12)).save(tmp_path / "brighter.png")
    with_copies = [*sources[:8], tmp_path / "smaller.jpg", tmp_path / "brighter.png", *sources[8:]]
    assert datasets.drop_near_duplicates(with_copies) == sources


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
    assert datasets.drop_near_duplicates(distinct) == distinct
    mixed = [tmp_path / "rocket_copy.jpg", *distinct[:3], tmp_path / "chelsea_small.jpg", *distinct[3:],
             tmp_path / "coffee_reframed.jpg"]
    # The copy of the rocket comes first, so the original, later, is the one dropped.
    expected = [tmp_path / "rocket_copy.jpg", *(p for p in distinct if p.name != "rocket.jpg")]
    assert datasets.drop_near_duplicates(mixed) == expected
    assert datasets.drop_near_duplicates(mixed, max_distance=0) == mixed
    assert datasets.drop_near_duplicates(mixed[:1]) == mixed[:1]
    assert datasets.drop_near_duplicates([]) == []


def test_drop_near_duplicates_names_an_unreadable_file(bench_sources, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a JPEG")
    with pytest.raises(ImageError, match="broken.jpg"):
        datasets.drop_near_duplicates([*datasets._collect_images(bench_sources[1:]), broken])


@pytest.mark.skipif(not (SHARED_DATA / "ukbench").is_dir(), reason="shared UKBench photos not available")
def test_drop_near_duplicates_finds_the_known_duplicates_of_ukbench():
    folder = SHARED_DATA / "ukbench"
    # 00081/00522: one file twice; 00823/00911: one photo, reframed. 00820-00823: the monkey's
    # other photos, which are not copies.
    paths = [folder / f"ukbench{i:05d}.jpg" for i in (81, 820, 821, 822, 823, 522, 911, 1000)]
    kept = datasets.drop_near_duplicates(paths)
    assert kept == [p for p in paths if p.stem not in ("ukbench00522", "ukbench00911")]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared photos not available")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_make_bench_on_shared_photos(tmp_path):
    folders = [SHARED_DATA / name for name in ("bsds500", "imagenet-sample", "ukbench")]
    n_families = len(FAMILIES)
    datasets.make_bench(folders, tmp_path, n_references=30, n_copies=n_families, n_noncopies=n_families,
                        n_hard_negatives=4, seed=0, progress=False)
    _check_bench(tmp_path, 30, n_families, n_families, 4)
