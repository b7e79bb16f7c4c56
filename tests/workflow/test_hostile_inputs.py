"""The workflow on hostile inputs: spaces in every path, braces in file names, a ground truth naming queries
that are not there; and a run killed mid-job, which a plain rerun resumes (the workflow profile)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from workflow.test_workflow import (
    REPO,
    planned_jobs,
    read_matches,
    snakemake,
    snakemake_command,
    workdir_with_config,
)

from d2lv.synth import demo

pytestmark = pytest.mark.slow

#: The demo query renamed to a name Snakemake would read as a wildcard, and its reference likewise.
BRACE_QUERY, BRACE_REFERENCE = "a{b}", "ref{0}"
#: A ground-truth query that is not in the query folder.
GHOST = "ghost"
GHOST_REFERENCE = "R_ghost"


@dataclass(frozen=True)
class Run:
    root: Path  # everything the run reads and writes is under it
    work: Path  # the Snakemake working folder
    results: Path
    queries: Path
    contract: list[str]  # the --config arguments
    output: str  # stdout and stderr of the run


def _hostile_sets(root: Path) -> tuple[Path, Path, Path]:
    """The demo set in folders with spaces, one copy and its reference named with braces, one query in a
    ``{batch}`` subfolder, and a ground truth (in a folder with spaces) that also names a missing query."""
    demo.make_demo(root / "demo", progress=False)
    data = root / "my data"
    queries, references = data / "queries dir", data / "references dir"
    shutil.copytree(root / "demo" / "queries", queries)
    shutil.copytree(root / "demo" / "references", references)
    truth = pd.read_csv(root / "demo" / "ground_truth.csv", dtype=str, keep_default_na=False)
    assert truth.set_index("query_id").reference_id["Q00002"] == "R000000"
    (queries / "Q00002.jpg").rename(queries / f"{BRACE_QUERY}.jpg")
    (references / "R000000.jpg").rename(references / f"{BRACE_REFERENCE}.jpg")
    (queries / "{batch}").mkdir()
    (queries / "Q00003.jpg").rename(queries / "{batch}" / "Q00003.jpg")
    truth = truth.replace({"Q00002": BRACE_QUERY, "R000000": BRACE_REFERENCE})
    truth.loc[len(truth)] = [GHOST, "R000001"]
    truth.loc[len(truth)] = [BRACE_QUERY, GHOST_REFERENCE]  # a second source that is not in the references
    ground_truth = data / "truth dir" / "ground truth.csv"
    ground_truth.parent.mkdir()
    truth.to_csv(ground_truth, index=False)
    return queries, references, ground_truth


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("hostile")
    queries, references, ground_truth = _hostile_sets(root)
    work = workdir_with_config(root / "run dir")
    results = root / "out dir" / "results dir"
    contract = ["--config", f"queries={queries}", f"references={references}", f"results={results}",
                f"ground_truth={ground_truth}"]
    before = _files(root)
    result = snakemake(work, *contract)
    stray = [path for path in _files(root) - before
             if results not in path.parents and work / ".snakemake" not in path.parents]
    assert not stray, f"files written outside the results folder: {stray}"
    return Run(root, work, results, queries, contract, result.stdout + result.stderr)


def test_spaces_and_braces_in_paths_run_end_to_end(hostile_run):
    results = hostile_run.results
    assert (results / "metrics.json").is_file() and (results / "global_descriptors.h5").is_file()
    matches = read_matches(results / "matches.csv")
    best = matches.sort_values("score", ascending=False).drop_duplicates("query_id").set_index("query_id")
    assert best.reference_id[BRACE_QUERY] == BRACE_REFERENCE
    assert best.reference_id["Q00003"] == "R000007"  # the query in the {batch} folder
    skipped = pd.read_csv(results / "skipped.csv", keep_default_na=False)
    assert not {BRACE_QUERY, BRACE_REFERENCE} & set(skipped.id)


def test_ground_truth_queries_not_in_the_query_set_are_left_out_with_a_warning(hostile_run):
    results = hostile_run.results
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["n_ground_truth_queries_missing"] == 1
    assert (metrics["n_queries"], metrics["n_copy_queries"]) == (12, 8)  # the demo's, not the ghost
    assert metrics["recall_at_1"] >= 0.9  # the ghost is not scored as a miss
    log = (results / "logs" / "evaluate.log").read_text()
    assert "warning: 1 of the 13 ground-truth queries are not in the query set" in log and GHOST in log
    report = pd.read_csv(results / "report" / "metrics.csv").iloc[0]
    assert report.n_ground_truth_queries_missing == 1 and report.recall_at_1 == pytest.approx(metrics["recall_at_1"])


def test_ground_truth_pairs_whose_reference_is_not_in_the_set_are_left_out_with_a_warning(hostile_run):
    results = hostile_run.results
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["n_ground_truth_references_missing"] == 1
    assert metrics["n_positives"] == metrics["n_copy_queries"] == 8  # the brace query's ghost source left out
    log = (results / "logs" / "evaluate.log").read_text()
    assert "references the ground truth names are not in the reference set" in log and GHOST_REFERENCE in log
    report = pd.read_csv(results / "report" / "metrics.csv").iloc[0]
    assert report.n_ground_truth_references_missing == 1 and report.micro_ap == pytest.approx(metrics["micro_ap"])


def test_a_brace_named_image_still_reruns_its_shard_when_it_changes(hostile_run):
    image = hostile_run.queries / f"{BRACE_QUERY}.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        assert planned_jobs(hostile_run.work, *hostile_run.contract).get("manifest") == 1
    finally:
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(hostile_run.work, *hostile_run.contract) == {}


def test_a_run_killed_mid_job_is_resumed_by_a_plain_rerun(hostile_run):
    """Killed while `evaluate` runs, the job leaves a partial metrics.json; the workflow profile's
    rerun-incomplete makes the next plain run redo it instead of stopping."""
    assert "Using workflow specific profile" in hostile_run.output
    work, results, contract = hostile_run.work, hostile_run.results, hostile_run.contract
    log = results / "logs" / "evaluate.log"
    log.unlink()
    run = subprocess.Popen(snakemake_command(work, "--forcerun", "evaluate", *contract), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not log.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.poll() is None and log.exists(), "evaluate did not start, or the run ended before it was killed"
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and its job: a crash, no clean-up
    run.wait()
    (results / "metrics.json").write_text('{"micro_ap": ')
    snakemake(work, "--unlock", *contract)
    stuck = snakemake(work, "--dry-run", "--workflow-profile", "none", *contract, check=False)
    assert stuck.returncode != 0 and "IncompleteFilesException" in stuck.stdout + stuck.stderr
    snakemake(work, *contract)
    assert json.loads((results / "metrics.json").read_text())["n_ground_truth_queries_missing"] == 1


#: Params that hold whole options, shell-quoted where they are built (`d2lv.workflow.flags`,
#: `d2lv.workflow.path_option`, `d2lv.workflow.bench_report_options`): quoting them again would make them one word.
PRE_QUOTED = {"options", "systems", "background", "boxes", "categories", "checkpoint", "crops", "ground_truth",
              "model", "regions", "dihedral"}


def test_every_shell_placeholder_is_quoted():
    """So that a path with a space (or any shell character) stays one argument, in every rule."""
    unquoted, commands = [], 0
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        blocks = re.findall(r"^\s+shell:\n((?:\s+\".*\"\n)+)", text, re.M)
        assert len(blocks) == text.count("shell:"), f"{path.name}: a shell command this test cannot read"
        commands += len(blocks)
        for block in blocks:
            command = ast.literal_eval(f"({block})")
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", command):
                if not field.endswith(":q") and field.removeprefix("params.") not in PRE_QUOTED:
                    unquoted.append(f"{path.name}: {{{field}}}")
    assert commands > 20 and not unquoted
