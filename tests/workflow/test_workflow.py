"""The Snakemake workflow end to end: demo run, user data, bad inputs, incremental re-runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import yaml
from PIL import Image

from d2lv.io import manifest
from d2lv.synth import demo

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command that runs the workflow in ``workdir`` with its config overlays (see :func:`workdir_with_config`)."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--cores", "2", "--configfile", str(SMALL), str(workdir / OVERLAY), *args]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with its config overlays (see :func:`workdir_with_config`)."""
    result = subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule name -> job count of a dry run (empty when nothing is to be done)."""
    result = snakemake(workdir, "--dry-run", *args)
    text = result.stdout + result.stderr
    table = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n(.*?)\ntotal", text, re.S)
    if table is None:
        assert "Nothing to be done" in text, text
        return {}
    return {rule: int(n) for rule, n in (line.split() for line in table.group(1).splitlines())}


#: Settings small enough for tests, layered over config.yaml.
SMALL = Path(__file__).with_name("small.yaml")
#: Each test's own overlay, written into its working folder.
OVERLAY = "overlay.yaml"


def workdir_with_config(tmp_path: Path, overlay: dict | None = None) -> Path:
    """A working folder holding the default config.yaml and ``overlay`` (nested keys) as overlay.yaml."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / OVERLAY).write_text(yaml.safe_dump(overlay or {}))
    return tmp_path


def read_matches(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()
    assert lines[0] == "query_id,reference_id,score"
    return pd.read_csv(path, dtype={"query_id": str, "reference_id": str})


def test_demo_runs_end_to_end_and_reruns_only_what_changed(tmp_path):
    work = workdir_with_config(tmp_path)
    snakemake(work)
    results = work / "results" / "demo"
    matches = read_matches(results / "matches.csv")
    assert not matches.duplicated(["query_id", "reference_id"]).any()
    assert matches.groupby("query_id").size().max() <= 10
    assert matches.score.is_monotonic_decreasing
    metrics = pd.read_json(results / "metrics.json", typ="series")
    assert metrics.micro_ap >= 0.9 and metrics.recall_at_1 >= 0.9
    assert (results / "matches.parquet").exists() and (results / "skipped.csv").exists()
    model = pd.read_json(work / "results" / "demo" / "work" / "merge" / "model.json", typ="series")
    assert model.n_positive > 0 and model.n_negative > model.n_positive
    # the calibration queries meet the near-duplicate pseudo-references, in search and in verification
    searched = pd.read_parquet(results / "work" / "descriptor" / "calibration" / "candidates")
    verified = pd.read_parquet(results / "work" / "local" / "calibration" / "scores")
    assert searched.reference_id.str.startswith("near").any() and verified.reference_id.str.startswith("near").any()
    assert not read_matches(results / "matches.csv").reference_id.str.startswith("near").any()

    snakemake(work, "--report", str(work / "report.html"))
    html = (work / "report.html").read_text()
    pictures = sorted(p.name for p in (results / "report" / "pairs").glob("*.jpg"))
    assert pictures and all(name in html for name in ["pr_curve.png", "metrics.csv", *pictures])

    assert planned_jobs(work) == {}
    # a new ratio: every query view of both query sets is verified again, and the collection takes the new
    # settings and model (a new version)
    workdir_with_config(tmp_path, {"local": {"verify": {"ratio": 0.7}}})
    assert planned_jobs(work) == {"verify": 4, "fit_merge": 1, "matches": 1, "evaluate": 1,
                                  "report_figures": 1, "collection": 1, "all": 1}
    workdir_with_config(tmp_path, {"merge": {"regularisation": 0.5}})  # refitting reruns only the merge
    assert planned_jobs(work) == {"fit_merge": 1, "matches": 1, "evaluate": 1, "report_figures": 1,
                                  "collection": 1, "all": 1}


@pytest.fixture
def user_sets(tmp_path) -> tuple[Path, Path, Path]:
    """Demo images as user folders (nested), plus broken files in both sets."""
    demo.make_demo(tmp_path / "demo")
    queries, references = tmp_path / "in" / "q", tmp_path / "in" / "r"
    shutil.copytree(tmp_path / "demo" / "queries", queries / "batch1")
    shutil.copytree(tmp_path / "demo" / "references", references)
    (references / "empty.jpg").write_bytes(b"")
    (references / "notes.png").write_text("not an image")
    data = (queries / "batch1" / "Q00000.jpg").read_bytes()
    (queries / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return queries, references, tmp_path / "demo" / "ground_truth.csv"


def add_distractors(folder: Path, n: int) -> None:
    """``n`` smooth random textures, none a copy of anything: references that no query matches."""
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        coarse = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
        Image.fromarray(coarse).resize((160, 120), Image.BICUBIC).save(folder / f"distractor_{i:02d}.jpg")


def test_user_folders_with_bad_files_and_one_added_reference(tmp_path, user_sets):
    """50 reference files at shard_size 10 (where ceil(n / shard_size) shards would reshard at 51), then one more:
    only the new reference's shard is extracted and added, nothing is trained again."""
    queries, references, ground_truth = user_sets
    add_distractors(references, 40)  # with the demo's 8 and the 2 broken files: 50
    # per-run training still works; the models learn from the first shard only (at least 1 image)
    work = workdir_with_config(tmp_path / "run", {"detect": {"train": True}, "fit_images": 1})
    contract = ["--config", f"queries={queries}", f"references={references}", f"results={tmp_path / 'out'}",
                f"ground_truth={ground_truth}", "shard_size=10"]
    snakemake(work, *contract)

    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv", keep_default_na=False)
    reasons = dict(zip(skipped.id, skipped.reason))
    assert {"empty", "notes", "truncated"} <= set(reasons)
    assert "empty" in reasons["empty"] and "unreadable" in reasons["notes"]
    matches = read_matches(tmp_path / "out" / "matches.csv")
    assert "truncated" not in set(matches.query_id)
    assert pd.read_json(tmp_path / "out" / "metrics.json", typ="series").micro_ap >= 0.9
    assert (tmp_path / "out" / "work" / "detect" / "detector.pt").stat().st_size > 1_000_000

    photo = Path(skimage.data.__file__).parent / "motorcycle_right.png"
    shutil.copy(photo, references / "extra.png")
    assert manifest.num_shards(51, 10) == manifest.num_shards(50, 10) == 8
    assert manifest.shard_of("extra", 8) >= 1  # not the shard the models are trained on
    jobs = planned_jobs(work, *contract)
    # The new reference's shard: extracted and encoded into the index, once ...
    per_shard = ("manifest", "sift", "local_add", "descriptor_extract", "descriptor_whiten", "pdq_hash")
    assert {rule: jobs.pop(rule, 0) for rule in per_shard} == dict.fromkeys(per_shard, 1)
    # ... the merges, and every query shard's searches and verification (their answers can change) ...
    query_shards = manifest.num_shards(13, 10) + 1  # queries; calibration copies: one shard (calibration_shard_size)
    assert jobs == {"local_merge": 1, "local_recall": 2 * query_shards, "verify": 2 * query_shards,
                    "descriptor_gather": 1, "descriptor_search": query_shards, "descriptor_export": 1,
                    "pdq_gather": 1, "pdq_search": query_shards, "pdq_export": 1,
                    "fit_merge": 1, "matches": 1, "skipped": 1, "evaluate": 1, "report_figures": 1,
                    "collection": 1, "all": 1}
    # ... and no training: the index, the detector, the whitening and the calibration copies stay.


def test_one_image_per_shard_runs_and_fits_models_across_shards(tmp_path):
    """shard_size=1 (and calibration_shard_size=1): empty calibration shards wait for the copies; the models learn
    from every shard."""
    demo.make_demo(tmp_path / "demo")
    queries, references = tmp_path / "q", tmp_path / "demo" / "references"
    queries.mkdir()
    for name in ("Q00000.jpg", "Q00001.jpg"):
        shutil.copy(tmp_path / "demo" / "queries" / name, queries / name)
    work = workdir_with_config(tmp_path / "run", {"detect": {"enabled": False}, "merge": {"calibration_queries": 3},
                                                  "calibration_shard_size": 1})
    snakemake(work, "--config", f"queries={queries}", f"references={references}",
              f"results={tmp_path / 'out'}", "shard_size=1")
    n_references = len(list(references.iterdir()))
    calibration = tmp_path / "out" / "work" / "manifests" / "calibration"
    assert len(list(calibration.glob("*.parquet"))) == manifest.num_shards(3, 1) == 4  # one of them empty
    copied = pd.read_csv(tmp_path / "out" / "work" / "calibration" / "ground_truth.csv", dtype=str)
    shards = {manifest.shard_of(ref, manifest.num_shards(n_references, 1)) for ref in copied.reference_id}
    assert len(shards) > 1, "calibration copies drawn from one reference shard"
    assert "Q00000" in set(read_matches(tmp_path / "out" / "matches.csv").query_id)


def test_a_tiny_shard_size_does_not_cut_the_calibration_copies_into_tiny_shards(tmp_path):
    """shard_size=1 on 6 references and 4 queries: a few hundred jobs at most, not thousands (the 200 calibration
    copies and their pseudo-references keep shards of calibration_shard_size)."""
    demo.make_demo(tmp_path / "demo")
    queries, references = tmp_path / "q", tmp_path / "r"
    for folder, names in ((queries, sorted((tmp_path / "demo" / "queries").iterdir())[:4]),
                          (references, sorted((tmp_path / "demo" / "references").iterdir())[:6])):
        folder.mkdir()
        for path in names:
            shutil.copy(path, folder / path.name)
    jobs = planned_jobs(workdir_with_config(tmp_path / "run"), "--config", f"queries={queries}",
                        f"references={references}", f"results={tmp_path / 'out'}", "shard_size=1")
    assert jobs["make_calibration"] == 1 and jobs["sift"] > 8 and sum(jobs.values()) < 300, jobs


def test_duplicate_ids_stop_the_run_before_any_job(tmp_path, user_sets):
    queries, references, _ = user_sets
    (queries / "batch2").mkdir()
    shutil.copy(queries / "batch1" / "Q00001.jpg", queries / "batch2" / "Q00001.jpg")
    work = workdir_with_config(tmp_path / "run")
    result = snakemake(work, "--config", f"queries={queries}", f"references={references}",
                       f"results={tmp_path / 'out'}", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "batch1/Q00001.jpg" in message and "batch2/Q00001.jpg" in message
    assert not (tmp_path / "out").exists()


def test_dry_run_wires_the_detector_crop_branch_and_calibration(tmp_path):
    jobs = planned_jobs(workdir_with_config(tmp_path / "default"))
    # One reference shard and one shard per query set: queries and the calibration copies.
    assert "train_detector" not in jobs, "the shipped detector is used unless detect.train is set"
    assert jobs["make_calibration"] == 1 and jobs["fit_merge"] == 1
    assert jobs["detect"] == 2  # per query set
    assert jobs["sift"] == 6  # references, queries, calibration, both sets' crops, calibration pseudo-references
    assert jobs["local_train"] == jobs["local_add"] == jobs["local_merge"] == 1  # one reference shard
    assert jobs["local_recall"] == jobs["verify"] == 4  # per query view and query shard
    assert jobs["descriptor_search"] == 2  # per query set and query shard, crops described in place

    own_weights = tmp_path / "detector.pt"
    own_weights.write_bytes(b"")
    jobs = planned_jobs(workdir_with_config(tmp_path / "weights", {"detect": {"weights": str(own_weights)}}))
    assert "train_detector" not in jobs and jobs["detect"] == 2
    jobs = planned_jobs(workdir_with_config(tmp_path / "train", {"detect": {"train": True}}))
    assert jobs["train_detector"] == 1 and jobs["detect"] == 2
    both = workdir_with_config(tmp_path / "both", {"detect": {"train": True, "weights": str(own_weights)}})
    result = snakemake(both, "-n", check=False)
    assert result.returncode != 0 and "exclude each other" in result.stdout + result.stderr

    jobs = planned_jobs(workdir_with_config(tmp_path / "sum", {"merge": {"mode": "sum"}}))
    assert not {"make_calibration", "fit_merge"} & set(jobs) and jobs["detect"] == 1

    jobs = planned_jobs(workdir_with_config(tmp_path / "plain", {"detect": {"enabled": False}}))
    assert not {"train_detector", "detect"} & set(jobs) and jobs["local_recall"] == 2
