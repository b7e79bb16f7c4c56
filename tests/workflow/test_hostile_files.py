"""The workflow on input folders as users have them: files that are not images, broken or empty sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data
from workflow.test_workflow import planned_jobs, read_matches, snakemake, workdir_with_config

from d2lv.io import isc, tables

pytestmark = pytest.mark.slow

#: The cheapest workflow that still trains an index, recalls and verifies: local branch only, summed.
LOCAL_ONLY = {"detect": {"enabled": False}, "descriptor": {"enabled": False}, "merge": {"mode": "sum"}}
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def junk(folder: Path) -> dict[str, str]:
    """What a Mac, a phone and git leave in a folder of photos: relative path -> the reason skipped.csv gives."""
    files = {
        ".DS_Store": (b"\0\0\0\1Bud1", "hidden file"),
        "._astronaut.jpg": (b"\0\5\26\7AppleDouble", "AppleDouble metadata file (macOS keeps a file's attributes "
                                                   "there), not an image"),
        "astronaut.heic": (b"\0\0\0\x18ftypheic", "unsupported format .heic"),  # the id of a real image
        "logo.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported format .svg"),
        ".git/HEAD": (b"ref: refs/heads/main\n", None),
    }
    reasons = {".git": "hidden folder, not searched (tool state such as .git or .snakemake)"}
    for name, (content, reason) in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
        if reason:
            reasons[name] = reason
    return reasons


def skipped_rows(results: Path) -> pd.DataFrame:
    return isc.read_id_csv(results / "skipped.csv", tables.SKIPPED.names)


def test_every_file_under_the_input_folders_is_accounted_for(tmp_path):
    """Real photos among junk in both sets: the run succeeds, skipped.csv lists every file that did not take part,
    no temporary file is left, and a new junk file reruns only the skipped report."""
    queries, references = tmp_path / "q", tmp_path / "r"
    references.mkdir(parents=True)
    queries.mkdir()
    for name in PHOTOS:
        photo(name).resize((320, 240)).save(references / f"{name}.jpg", quality=90)
    for name in PHOTOS[:2]:  # a crop of two references each
        image = photo(name)
        w, h = image.size
        image.crop((w // 8, h // 8, w - w // 6, h - h // 6)).resize((300, 220)).save(queries / f"copy_{name}.jpg")
    expected = {("queries", name): reason for name, reason in junk(queries).items()}
    expected |= {("references", name): reason for name, reason in junk(references).items()}
    (references / "empty.jpg").write_bytes(b"")

    work = workdir_with_config(tmp_path / "run", LOCAL_ONLY)
    results = tmp_path / "out"
    contract = ["--config", f"queries={queries}", f"references={references}", f"results={results}"]
    snakemake(work, *contract)

    rows = skipped_rows(results)
    folders = {"queries": queries, "references": references}
    listed = {(s, Path(p).relative_to(folders[s]).as_posix()): reason
              for s, p, stage, reason in zip(rows.set, rows.path, rows.stage, rows.reason) if stage == "listing"}
    assert listed == expected
    assert rows[rows.stage == "manifest"][["set", "id"]].values.tolist() == [["references", "empty"]]
    matches = read_matches(results / "matches.csv")
    best = matches.sort_values("score", ascending=False).groupby("query_id").head(1)
    assert dict(zip(best.query_id, best.reference_id)) == {f"copy_{n}": n for n in PHOTOS[:2]}
    assert not [p for p in results.rglob("*") if ".partial" in p.name]

    assert planned_jobs(work, *contract) == {}
    (references / "sub" / ".DS_Store").parent.mkdir()
    (references / "sub" / ".DS_Store").write_bytes(b"\0")
    assert planned_jobs(work, *contract) == {"skipped": 1, "all": 1}


def test_references_that_all_fail_to_decode_stop_the_run_before_any_training(tmp_path):
    """Default settings: one line on the console says why and what to do, each file's reason above it."""
    queries, references = tmp_path / "q", tmp_path / "r"
    queries.mkdir(parents=True)
    references.mkdir()
    for name in PHOTOS[:2]:
        photo(name).resize((320, 240)).save(queries / f"{name}.jpg")
    (references / "empty.jpg").write_bytes(b"")
    (references / "notes.png").write_text("not an image")
    whole = (queries / "astronaut.jpg").read_bytes()
    (references / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (references / ".DS_Store").write_bytes(b"\0")

    work = workdir_with_config(tmp_path / "run")
    results = tmp_path / "out"
    result = snakemake(work, "--show-failed-logs", "--config", f"queries={queries}", f"references={references}",
                       f"results={results}", check=False)
    console = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in console.splitlines() if line.startswith("d2lv check-references: error: ")]
    assert len(errors) == 1, console
    assert "no usable reference image: 3 found, all refused (2x unreadable image, 1x empty file (0 bytes))" in errors[0]
    assert "--config references=DIR" in errors[0]
    for name in ("empty.jpg", "notes.png", "truncated.jpg"):
        assert f"refused: {references / name}: " in console
    work_dir = results / "work"
    trained = [work_dir / "local" / "index" / "trained.faiss", work_dir / "calibration" / "ground_truth.csv",
               work_dir / "descriptor" / "whitening.h5", work_dir / "detect" / "detector.pt"]
    assert not [p for p in trained if p.exists()]
    # the rest of the run goes on (keep-going): skipped.csv says why each file was refused
    refused = {Path(path).name for path in skipped_rows(results).path}
    assert {"empty.jpg", "notes.png", "truncated.jpg", ".DS_Store"} <= refused, refused


def test_an_empty_or_imageless_folder_stops_the_run_before_it_starts(tmp_path):
    queries, references = tmp_path / "q", tmp_path / "r"
    queries.mkdir()
    references.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(queries / "black.png")
    work = workdir_with_config(tmp_path / "run")
    contract = ["--config", f"queries={queries}", f"references={references}", f"results={tmp_path / 'out'}"]
    result = snakemake(work, *contract, check=False)
    assert result.returncode != 0
    assert f"references folder '{references}' is empty: put the references images in it" in result.stderr

    (references / "scan.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (references / ".DS_Store").write_bytes(b"\0")
    result = snakemake(work, *contract, check=False)
    assert result.returncode != 0
    assert (f"references folder '{references}' holds no image file: everything in it was set aside "
            "(1x hidden file, 1x unsupported format .heic); d2lv reads .bmp, .gif") in result.stderr
    assert not (tmp_path / "out").exists()


def test_queries_that_all_fail_to_decode_give_empty_matches_and_say_why(tmp_path):
    """Nothing to match is a result, not an error: matches.csv is its header, skipped.csv names every query."""
    queries, references = tmp_path / "q", tmp_path / "r"
    queries.mkdir(parents=True)
    references.mkdir()
    for name in PHOTOS:
        photo(name).resize((320, 240)).save(references / f"{name}.jpg")
    (queries / "empty.jpg").write_bytes(b"")
    (queries / "notes.png").write_text("not an image")
    work = workdir_with_config(tmp_path / "run", LOCAL_ONLY)
    results = tmp_path / "out"
    snakemake(work, "--config", f"queries={queries}", f"references={references}", f"results={results}")
    assert read_matches(results / "matches.csv").empty
    rows = skipped_rows(results)
    assert sorted(rows[rows.set == "queries"].id) == ["empty", "notes"]
