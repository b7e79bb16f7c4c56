"""The Snakemake workflow end to end: demo run, user data, bad inputs, incremental re-runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import skimage.data

from d2lv import datasets

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
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


def workdir_with_config(tmp_path: Path, **changes: str) -> Path:
    text = (REPO / "config.yaml").read_text()
    for key, value in changes.items():
        text, n = re.subn(rf"^(\s*{key}:)\s*[^#\n]*", rf"\g<1> {value}  ", text, count=1, flags=re.M)
        assert n == 1, key
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(text)
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

    assert planned_jobs(work) == {}
    workdir_with_config(tmp_path, ratio="0.7")
    assert planned_jobs(work) == {"local_verify": 1, "matches": 1, "metrics": 1, "all": 1}


@pytest.fixture
def user_sets(tmp_path) -> tuple[Path, Path, Path]:
    """Demo images as user folders (nested), plus broken files in both sets."""
    datasets.make_demo(tmp_path / "demo")
    queries, references = tmp_path / "in" / "q", tmp_path / "in" / "r"
    shutil.copytree(tmp_path / "demo" / "queries", queries / "batch1")
    shutil.copytree(tmp_path / "demo" / "references", references)
    (references / "empty.jpg").write_bytes(b"")
    (references / "notes.png").write_text("not an image")
    data = (queries / "batch1" / "Q00000.jpg").read_bytes()
    (queries / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return queries, references, tmp_path / "demo" / "ground_truth.csv"


def test_user_folders_with_bad_files_and_one_added_reference(tmp_path, user_sets):
    queries, references, ground_truth = user_sets
    work = workdir_with_config(tmp_path / "run")
    contract = ["--config", f"queries={queries}", f"references={references}", f"results={tmp_path / 'out'}",
                f"ground_truth={ground_truth}", "shard_size=3"]
    snakemake(work, *contract)  # 10 references -> 4 shards

    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv", keep_default_na=False)
    reasons = dict(zip(skipped.id, skipped.reason))
    assert {"empty", "notes", "truncated"} <= set(reasons)
    assert "empty" in reasons["empty"] and "unreadable" in reasons["notes"]
    matches = read_matches(tmp_path / "out" / "matches.csv")
    assert "truncated" not in set(matches.query_id)
    assert pd.read_json(tmp_path / "out" / "metrics.json", typ="series").micro_ap >= 0.9

    photo = Path(skimage.data.__file__).parent / "motorcycle_right.png"
    shutil.copy(photo, references / "extra.png")  # 11 files: still 4 shards; "extra" is not in shard 0,
    jobs = planned_jobs(work, *contract)  # so the whitening (fitted on shard 0) stays
    per_shard = {"manifest", "sift", "local_index", "local_recall", "local_verify", "global_extract",
                 "global_search"}
    assert {rule: jobs.get(rule) for rule in per_shard} == dict.fromkeys(per_shard, 1)
    gathers = {"local_candidates", "global_candidates", "global_descriptors", "matches", "skipped", "metrics"}
    assert set(jobs) == per_shard | gathers | {"all"}


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
