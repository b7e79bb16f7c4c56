"""Unique ids, stable sharding, and the manifest of a folder mixing good and bad files."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from d2lv.io import tables
from d2lv.io.manifest import (
    DuplicateIdError,
    UnusableSetError,
    build_manifest,
    check_unique_ids,
    num_shards,
    plan_shards,
    read_manifest,
    require_usable,
    shard_name,
    shard_of,
    shard_paths,
)

EXIF_ORIENTATION = 0x0112


# ---------------------------------------------------------------- helpers


def fake_paths(n: int, prefix: str = "img") -> list[Path]:
    """Paths that are never opened (sharding only looks at names)."""
    return [Path("set") / f"{prefix}_{i:04d}.jpg" for i in range(n)]


def save(pixels: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, **kwargs)
    return path


def membership(plan: dict[str, list[Path]]) -> dict[str, set[str]]:
    return {name: {p.name for p in paths} for name, paths in plan.items()}


@pytest.fixture
def mixed_folder(tmp_path, astronaut, chelsea, coffee) -> Path:
    """Good photos in several formats and subfolders, plus every kind of bad file."""
    root = tmp_path / "images"
    save(astronaut, root / "astronaut.jpg", quality=90)
    save(chelsea, root / "cats" / "chelsea.png")
    save(coffee, root / "drinks" / "coffee.webp", quality=80)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored sideways (451x300), upright it is 300 high, 451 wide
    save(np.rot90(chelsea, 1), root / "cats" / "sideways.jpg", quality=90, exif=exif.tobytes())
    (root / "empty.jpg").write_bytes(b"")
    whole = save(coffee, tmp_path / "whole.jpg", quality=90).read_bytes()
    (root / "drinks" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "text.png").write_text("not an image at all\n")
    (root / "readme.txt").write_text("ignored: not an image extension\n")
    return root


# ---------------------------------------------------------------- unique ids


def test_check_unique_ids_maps_stem_to_path():
    paths = [Path("a/one.jpg"), Path("b/two.png"), Path("three.JPG")]
    assert check_unique_ids(paths) == {"one": paths[0], "two": paths[1], "three": paths[2]}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("left/photo.jpg", "right/photo.jpg"),  # same stem, different folders
        ("photo.jpg", "photo.png"),  # same stem, different extensions
    ],
)
def test_duplicate_stem_raises_naming_both_paths(first, second):
    paths = [Path("set/other.jpg"), Path("set") / first, Path("set/more.jpg"), Path("set") / second]
    with pytest.raises(DuplicateIdError) as caught:
        check_unique_ids(paths)
    message = str(caught.value)
    assert str(Path("set") / first) in message and str(Path("set") / second) in message
    assert "'photo'" in message
    assert isinstance(caught.value, ValueError)  # the CLI reports ValueErrors as user errors


# ---------------------------------------------------------------- sharding


@pytest.mark.parametrize(("n", "shard_size"), [(1, 1), (5, 10), (10, 3), (100, 7), (250, 50), (0, 4)])
def test_plan_shards_puts_every_image_in_exactly_one_shard(n, shard_size):
    paths = fake_paths(n)
    plan = plan_shards(paths, shard_size)
    expected_shards = 2 ** math.ceil(math.log2(max(1, math.ceil(n / shard_size))))  # a power of two
    assert list(plan) == [shard_name(i) for i in range(expected_shards)]  # "0000", "0001", ... even if empty
    placed = [p for shard in plan.values() for p in shard]
    assert sorted(placed) == sorted(paths)
    assert len(placed) == len(set(placed))
    for name, shard in plan.items():  # each image sits in the shard its id hashes to
        assert all(shard_of(p.stem, expected_shards) == int(name) for p in shard)


def test_shards_stay_put_as_the_collection_grows_until_it_doubles():
    """50 images at shard_size 10, then 51 (ceil(n / shard_size) would go from 5 to 6 shards and move most
    images): every image keeps its shard; the count changes only past 80 = 10 * 2**3, and then each
    shard splits in two."""
    assert [num_shards(n, 10) for n in (1, 10, 11, 20, 21, 40, 41, 50, 51, 80, 81)] == [1, 1, 2, 2, 4, 4, 8, 8, 8,
                                                                                         8, 16]
    fifty = membership(plan_shards(fake_paths(50), 10))
    grown = membership(plan_shards(fake_paths(51), 10))
    moved = {name: fifty[name] - grown[name] for name in fifty}
    assert not any(moved.values())
    doubled = membership(plan_shards(fake_paths(81), 10))
    for name, members in fifty.items():  # shard s splits into s and s + 8
        assert members <= doubled[name] | doubled[shard_name(int(name) + 8)]


def test_shard_names_are_zero_padded():
    assert [shard_name(i) for i in (0, 7, 123)] == ["0000", "0007", "0123"]


def test_adding_one_image_leaves_other_shards_unchanged():
    before_paths = fake_paths(20)
    added = Path("set") / "newcomer.jpg"
    shard_size = 8
    assert num_shards(20, shard_size) == num_shards(21, shard_size) == 4
    before = membership(plan_shards(before_paths, shard_size))
    after = membership(plan_shards([*before_paths, added], shard_size))
    assert before.keys() == after.keys()
    target = shard_name(shard_of(added.stem, 4))
    for name in before:
        if name == target:
            assert after[name] == before[name] | {added.name}
        else:
            assert after[name] == before[name]


def test_removing_one_image_leaves_other_shards_unchanged():
    paths = fake_paths(30)
    removed = paths[17]
    before = membership(plan_shards(paths, 10))
    after = membership(plan_shards([p for p in paths if p != removed], 10))  # 3 shards both times
    for name in before:
        assert after[name] == before[name] - {removed.name}


def test_plan_shards_rejects_duplicate_ids():
    with pytest.raises(DuplicateIdError):
        plan_shards([Path("x/a.jpg"), Path("y/a.jpg")], 10)


@pytest.mark.parametrize("bad_size", [0, -1])
def test_shard_size_must_be_positive(bad_size):
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(fake_paths(3), bad_size)


def test_shard_of_is_deterministic_and_in_range():
    keys = [p.stem for p in fake_paths(1000)] + ["", "ünïcödé", "R123456"]
    first = [shard_of(k, 7) for k in keys]
    assert first == [shard_of(k, 7) for k in keys]
    assert set(first) <= set(range(7))
    counts = np.bincount([shard_of(k, 4) for k in keys[:1000]], minlength=4)
    assert counts.min() > 150  # spread out, not all ids in one shard


def test_shard_of_is_stable_across_processes():
    # Python's hash() of a str changes per process; a shard must not.
    keys = ["img_0000", "Q00001", "R987654", "ünïcödé"]
    code = f"from d2lv.io.manifest import shard_of; print([shard_of(k, 13) for k in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == str([shard_of(k, 13) for k in keys])


def test_shard_paths_partition_equals_plan_shards(tmp_path, chelsea):
    for i in range(23):
        sub = tmp_path / ("a" if i % 3 else "b") / ("deep" if i % 5 == 0 else "")
        save(chelsea[i : i + 16, i : i + 16], sub / f"photo{i:02d}.png")
    (tmp_path / "skip.txt").write_text("not an image")
    paths = sorted(tmp_path.rglob("*.png"))
    n_shards = num_shards(len(paths), 6)
    assert n_shards == 4
    plan = plan_shards(paths, 6)
    union = []
    for index in range(n_shards):
        members = shard_paths(tmp_path, index, n_shards)
        assert sorted(members) == sorted(plan[shard_name(index)])
        union += members
    assert sorted(union) == paths


def test_shard_paths_rejects_duplicate_ids(tmp_path, chelsea):
    save(chelsea, tmp_path / "one" / "cat.png")
    save(chelsea, tmp_path / "two" / "cat.jpg")
    with pytest.raises(DuplicateIdError):
        shard_paths(tmp_path, 0, 1)


# ---------------------------------------------------------------- build_manifest


def test_build_manifest_sizes_good_files_and_skips_bad_ones(mixed_folder):
    paths = shard_paths(mixed_folder, 0, 1)
    frame = build_manifest(paths, progress=False)  # must not raise for any bad file
    assert list(frame.columns) == tables.MANIFEST.names
    assert len(frame) == 7  # readme.txt is not an image
    rows = frame.set_index("id")
    expected_sizes = {  # id -> (width, height), upright
        "astronaut": (512, 512),
        "chelsea": (451, 300),
        "coffee": (600, 400),
        "sideways": (451, 300),  # stored 300 wide, 451 high; EXIF turns it
    }
    for key, (width, height) in expected_sizes.items():
        row = rows.loc[key]
        assert (row.width, row.height, row.status, row.reason) == (width, height, "ok", "")
        assert row.bytes == Path(row.path).stat().st_size > 0
    skipped = rows[rows.status == "skipped"]
    assert set(skipped.index) == {"empty", "truncated", "text"}
    assert (skipped.width == 0).all() and (skipped.height == 0).all()
    assert "empty" in skipped.loc["empty", "reason"]
    assert "truncated" in skipped.loc["truncated", "reason"]
    assert "unreadable" in skipped.loc["text", "reason"]
    assert skipped.loc["empty", "bytes"] == 0 and skipped.loc["text", "bytes"] > 0


def test_build_manifest_records_vanished_file_and_bomb(tmp_path, astronaut, chelsea):
    big = save(astronaut, tmp_path / "big.png")
    small = save(chelsea, tmp_path / "small.png")
    gone = tmp_path / "gone.jpg"  # listed, then deleted before decoding
    limit = 200_000  # chelsea has 135,300 pixels, astronaut 262,144
    frame = build_manifest([big, small, gone], max_pixels=limit, progress=False).set_index("id")
    assert frame.loc["small", "status"] == "ok"
    assert frame.loc["big", "status"] == "skipped"
    assert "decompression bomb" in frame.loc["big", "reason"]
    assert (frame.loc["gone", "status"], frame.loc["gone", "bytes"]) == ("skipped", 0)
    assert "not found" in frame.loc["gone", "reason"]


def test_build_manifest_rejects_duplicate_ids(tmp_path, chelsea):
    paths = [save(chelsea, tmp_path / "x" / "cat.png"), save(chelsea, tmp_path / "y" / "cat.png")]
    with pytest.raises(DuplicateIdError):
        build_manifest(paths, progress=False)


def test_empty_manifest_has_the_schema_columns():
    frame = build_manifest([], progress=False)
    assert len(frame) == 0 and list(frame.columns) == tables.MANIFEST.names


def test_read_manifest_filters_unusable_rows(tmp_path, mixed_folder):
    frame = build_manifest(shard_paths(mixed_folder, 0, 1), progress=False)
    out = tmp_path / "manifest.parquet"
    tables.write_table(frame, out, tables.MANIFEST)
    everything = read_manifest(out, usable_only=False)
    usable = read_manifest(out)  # usable_only defaults to True
    assert len(everything) == 7
    assert sorted(usable.id) == ["astronaut", "chelsea", "coffee", "sideways"]
    assert (usable.status == "ok").all()
    assert list(usable.index) == list(range(len(usable)))
    pd.testing.assert_frame_equal(usable, everything[everything.status == "ok"].reset_index(drop=True))


# ---------------------------------------------------------------- the command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["d2lv", *args], capture_output=True, text=True, timeout=120)


def test_cli_manifest_writes_good_and_skipped_rows(tmp_path, mixed_folder):
    out = tmp_path / "out.parquet"
    result = run_cli("manifest", str(mixed_folder), "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "7 images" in result.stderr and "3 skipped" in result.stderr
    frame = pq.read_table(out).to_pandas().set_index("id")
    assert set(frame.index) == {"astronaut", "chelsea", "coffee", "sideways", "empty", "truncated", "text"}
    assert set(frame.index[frame.status == "skipped"]) == {"empty", "truncated", "text"}
    assert (frame.loc[frame.status == "skipped", "reason"].str.len() > 0).all()
    assert (frame.loc["sideways", "width"], frame.loc["sideways", "height"]) == (451, 300)


def test_cli_manifest_fails_on_shared_stem_naming_both_files(tmp_path, chelsea):
    root = tmp_path / "images"
    first = save(chelsea, root / "a" / "cat.jpg")
    second = save(chelsea, root / "b" / "cat.png")
    out = tmp_path / "out.parquet"
    result = run_cli("manifest", str(root), "-o", str(out), "--quiet")
    assert result.returncode != 0
    assert str(first) in result.stderr and str(second) in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("min_images", [1, 12, 39])
def test_fitted_models_learn_from_the_first_shards_holding_enough_images(tmp_path, chelsea, min_images):
    from d2lv import workflow

    for i in range(40):
        Image.fromarray(chelsea[i:]).save(tmp_path / f"img{i:02d}.jpg")
    listing = workflow.list_set(tmp_path, "references", None)
    plan = workflow.shard_plan(listing.images, 5)  # 8 shards, about 5 images each
    sizes = [len(images) for images in plan.values()]
    chosen = workflow.fit_shards(plan, min_images)
    assert chosen == list(plan)[: len(chosen)]
    assert sum(sizes[: len(chosen)]) >= min_images > sum(sizes[: len(chosen) - 1])
    assert workflow.fit_shards(plan, min_images=1000) == list(plan)  # a smaller collection: every shard


# ---------------------------------------------------------------- no usable image: check-references


def write_manifest(folder: Path, out: Path) -> Path:
    tables.write_table(build_manifest(shard_paths(folder, 0, 1), progress=False), out, tables.MANIFEST)
    return out


@pytest.fixture
def broken_folder(tmp_path, coffee) -> Path:
    """References that all fail to decode: empty, truncated, text named .png."""
    root = tmp_path / "broken"
    root.mkdir()
    (root / "empty.jpg").write_bytes(b"")
    whole = save(coffee, tmp_path / "whole.jpg", quality=90).read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "text.png").write_text("not an image\n")
    return root


def test_require_usable_counts_the_usable_images_or_says_why_there_are_none(mixed_folder, broken_folder):
    assert require_usable(build_manifest(shard_paths(mixed_folder, 0, 1), progress=False), "image") == 4
    with pytest.raises(UnusableSetError, match=r"no usable reference image: 3 found, all refused \(2x unreadable "
                       r"image, 1x empty file \(0 bytes\)\)"):
        require_usable(build_manifest(shard_paths(broken_folder, 0, 1), progress=False), "reference image")
    with pytest.raises(UnusableSetError, match="there is none"):
        require_usable(build_manifest([], progress=False), "reference image")


def test_cli_check_references_fails_listing_each_refused_file(tmp_path, broken_folder):
    manifest = write_manifest(broken_folder, tmp_path / "0000.parquet")
    out = tmp_path / "usable.txt"
    result = run_cli("check-references", str(manifest), "--num-shards", "1", "-o", str(out), "--quiet")
    assert result.returncode == 2 and not out.exists()
    *listed, error = result.stderr.strip().splitlines()
    assert len(listed) == 3, result.stderr
    for line, (name, reason) in zip(sorted(listed), [("empty.jpg", "empty file (0 bytes)"),
                                                     ("text.png", "unreadable image: cannot identify image file"),
                                                     ("truncated.jpg", "unreadable image: image file is truncated")]):
        assert line.startswith(f"refused: {broken_folder / name}: {reason}"), line
    assert error.startswith("d2lv check-references: error: no usable reference image: 3 found, all refused")
    assert "nothing was trained" in error and "Traceback" not in result.stderr


def test_cli_check_references_passes_a_shard_with_a_usable_image(tmp_path, mixed_folder):
    manifest = write_manifest(mixed_folder, tmp_path / "0000.parquet")
    out = tmp_path / "usable.txt"
    result = run_cli("check-references", str(manifest), "--num-shards", "4", "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "4 usable reference images in 1 shards\n"


def test_the_manifest_of_a_shard_decodes_exactly_the_files_it_is_given(tmp_path, chelsea):
    """The workflow passes a shard's planned files: their siblings in the folder are neither listed nor decoded."""
    given = [save(chelsea, tmp_path / "set" / f"given{i}.png") for i in range(2)]
    save(chelsea, tmp_path / "set" / "sibling.png")
    out = tmp_path / "shard.parquet"
    result = run_cli("manifest", *map(str, given), "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    frame = read_manifest(out)
    assert sorted(frame.id) == ["given0", "given1"] and set(frame.status) == {"ok"}
    empty = tmp_path / "empty.parquet"
    assert run_cli("manifest", "-o", str(empty), "--quiet").returncode == 0  # an empty shard
    assert len(read_manifest(empty, usable_only=False)) == 0
