"""The run's plan (d2lv.workflow.Plan), built from the config as the Snakefile does, and what parsing imports."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from d2lv import workflow
from d2lv.io.paths import read_path_list, read_refusal_list
from d2lv.workflow import Plan

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """12 query and 40 reference files (planning lists names; it decodes nothing)."""
    root = tmp_path_factory.mktemp("sets")
    for name, count in (("queries", 12), ("references", 40)):
        (root / name).mkdir()
        for i in range(count):
            (root / name / f"{name[0]}{i:03d}.jpg").write_bytes(b"\xff\xd8")
    (root / "references" / "notes.txt").write_text("not an image")
    return root / "queries", root / "references"


def config_for(folders, tmp_path, **overrides) -> dict:
    config = copy.deepcopy(DEFAULTS)
    config.update(queries=str(folders[0]), references=str(folders[1]), results=str(tmp_path / "out"))
    for key, value in overrides.items():
        section, _, name = key.rpartition("__")
        (config[section] if section else config)[name] = value
    return config


def test_a_calibrated_run_plans_the_calibration_sets_and_every_query_view(folders, tmp_path):
    plan = Plan.from_config(config_for(folders, tmp_path, shard_size=10))
    assert list(plan.query_sets) == ["queries", "calibration"]
    assert plan.views == {"queries": "queries", "queries_crops": "queries", "calibration": "calibration",
                          "calibration_crops": "calibration"}
    assert plan.shards["queries_crops"] == plan.shards["queries"]
    assert sum(map(len, plan.shards["references"].values())) == 40 and len(plan.shards["references"]) == 4
    assert set(plan.made_sets) == {"calibration", "calibration_near"}
    assert len(plan.made_images()) == 200 + 150  # copies; halves and graphic tiles (merge.near_duplicates ...)
    plan.write_shard_lists()
    assert [path for path, _ in read_refusal_list(plan.refusal_list("references"))] == [str(folders[1] / "notes.txt")]
    assert plan.made_by("calibration") == [f"{plan.calibration_dir}/ground_truth.csv"] and not plan.made_by("queries")


def test_a_shard_list_changes_with_the_shards_members_and_its_stamp_with_their_contents(tmp_path):
    """No image is a Snakemake input: the manifest reads its shard's list, rewritten only when the shard's
    members change, and a digest of their sizes and times (a param) reruns it when one changes in place."""
    for name in ("queries", "references"):
        (tmp_path / name).mkdir()
        for stem in ("plain", "a{b}"):  # a name Snakemake would read as a wildcard is no problem
            (tmp_path / name / f"{stem}.jpg").write_bytes(b"\xff\xd8")
    config = config_for((tmp_path / "queries", tmp_path / "references"), tmp_path)
    plan = Plan.from_config(config)
    plan.write_shard_lists()
    (shard,) = plan.shards["references"]
    listed = Path(plan.shard_list("references", shard))
    assert listed.read_text().splitlines() == [str(tmp_path / "references" / f"{stem}.jpg") for stem in
                                               ("a{b}", "plain")]
    written, stamp = listed.stat().st_mtime_ns, plan.shard_stamp("references", shard)
    Plan.from_config(config).write_shard_lists()
    assert listed.stat().st_mtime_ns == written  # same members: not rewritten
    (tmp_path / "references" / "plain.jpg").write_bytes(b"\xff\xd8\xff")
    assert Plan.from_config(config).shard_stamp("references", shard) != stamp
    (tmp_path / "references" / "new.jpg").write_bytes(b"\xff\xd8")
    Plan.from_config(config).write_shard_lists()
    assert "new.jpg" in listed.read_text()
    assert plan.shard_stamp("calibration", "0000") == "" and plan.made_by("calibration")


def test_the_calibration_copies_do_not_follow_a_tiny_shard_size(folders, tmp_path):
    plan = Plan.from_config(config_for(folders, tmp_path, shard_size=1))
    assert len(plan.shards["references"]) == 64  # 40 references, one per shard on average: a power of two
    assert len(plan.shards["calibration"]) == 1 and len(plan.shards["calibration_near"]) == 1


def test_switching_branches_off_removes_their_views_sets_and_inputs(folders, tmp_path):
    plan = Plan.from_config(config_for(folders, tmp_path, detect__enabled=False, merge__mode="sum",
                                       pdq__enabled=False))
    assert plan.query_sets == ("queries",) and plan.views == {"queries": "queries"} and not plan.made_sets
    assert set(plan.shards) == {"queries", "references"}
    inputs = plan.merge_inputs("queries")
    assert inputs["crop"] == inputs["pdq"] == inputs["boxes"] == [] and inputs["local"] and inputs["global_"]
    shard = next(iter(plan.shards["queries"]))
    assert [Path(t).parts[-4] for t in plan.candidate_tables("queries", shard)] == ["local", "descriptor"]
    assert f"{plan.results}/pdq_hashes.csv" not in plan.final_outputs()


def test_the_calibration_queries_are_also_searched_against_their_pseudo_references(folders, tmp_path):
    plan = Plan.from_config(config_for(folders, tmp_path))
    pattern = f"{plan.work}/features/{{set}}/{{shard}}.h5"
    assert plan.near_files(pattern, "queries") == []
    near = plan.near_files(pattern, "calibration")
    assert near and all("/calibration_near/" in path for path in near)
    plan.write_shard_lists()
    assert read_path_list(plan.reference_store_list("calibration")) == plan.shard_files(pattern, "references") + near
    assert plan.verification_branch("queries") == "local" and plan.verification_branch("calibration_crops") == \
        "local_crop"


def test_each_benchmark_system_is_there_when_its_branch_runs(folders, tmp_path):
    files = {name: [f"{name}/0000.parquet"] for name in
             ("local_index", "local_features", "pdq_store", "cnn_store", "global_store", "local_candidates",
              "global_candidates", "pdq_candidates")}
    input = SimpleNamespace(**files, pdq="pdq.parquet", cnn="cnn.parquet", matches="matches.parquet")
    names = [name for name, *_ in workflow.bench_systems(Plan.from_config(config_for(folders, tmp_path)), input)]
    assert names == ["PDQ", "CNN global (ImageNet GeM)", "d2lv local votes (recall only)", "d2lv local branch",
                     "d2lv crop branch", "d2lv global branch", "d2lv hash branch", "d2lv sum merge",
                     "d2lv full (calibrated merge)"]
    plain = Plan.from_config(config_for(folders, tmp_path, detect__enabled=False, merge__mode="sum"))
    names = [name for name, *_ in workflow.bench_systems(plain, input)]
    assert "d2lv crop branch" not in names and "d2lv sum merge" not in names and names[-1] == "d2lv full (sum merge)"


def test_an_empty_query_folder_stops_the_plan_saying_so(folders, tmp_path):
    (tmp_path / "empty").mkdir()
    config = config_for(folders, tmp_path)
    config["queries"] = str(tmp_path / "empty")
    with pytest.raises(workflow.EmptySetError, match="queries folder .* is empty"):
        Plan.from_config(config)


HEAVY = ("faiss", "torch", "h5py", "pdqhash")
_PARSE = """
import sys
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("exit:", exit.code)
print("heavy:", sorted(name for name in {heavy!r} if name in sys.modules))
"""


def test_parsing_the_snakefile_imports_no_faiss_torch_h5py_or_pdqhash(folders, tmp_path):
    """Every re-run and every cluster job parses the Snakefile: it must not pay for these imports."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    run = subprocess.run(
        [sys.executable, "-c", _PARSE.format(heavy=HEAVY), "-n", "-q", "-s", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--config", f"queries={folders[0]}", f"references={folders[1]}",
         f"results={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=REPO, check=True,
    )
    assert "exit: 0" in run.stdout and "heavy: []" in run.stdout, run.stdout + run.stderr
