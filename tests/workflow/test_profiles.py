"""The Slurm profiles against the rules: every rule that declares `gpu=1` runs without a GPU request on the
CPU profile and goes to the GPU partition on the GPU profile (scripts/slurm-demo.sh runs the CPU one)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "workflow" / "profiles"


def rules() -> dict[str, str]:
    """Rule name -> its text, for every rule of rules/*.smk."""
    found = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        found.update(zip(parts[1::2], parts[2::2]))
    return found


def gpu_rules() -> set[str]:
    return {name for name, text in rules().items() if re.search(r"^\s+gpu=", text, re.M)}


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def test_gpu_rules_found():
    assert {"detect", "descriptor_extract", "local_train", "local_recall"} <= gpu_rules()


@pytest.mark.parametrize("name", ["slurm", "slurm-gpu"])
def test_profile_names_existing_rules_and_polls_squeue(name):
    settings = profile(name)
    assert settings["executor"] == "slurm"
    # sacct exits 1 without an accounting database, and the executor then waits forever.
    assert settings["slurm-status-command"] == "squeue"
    assert set(settings["set-resources"]) <= set(rules())


def test_cpu_profile_requests_no_gpu():
    overrides = profile("slurm")["set-resources"]
    assert {name for name, resources in overrides.items() if resources.get("gpu") == 0} == gpu_rules()
    assert "slurm_partition" not in profile("slurm")["default-resources"]


def test_gpu_profile_sends_gpu_rules_to_the_gpu_partition():
    settings = profile("slurm-gpu")
    overrides = settings["set-resources"]
    on_gpu = {name for name, resources in overrides.items() if resources.get("slurm_partition") == "gpu"}
    assert on_gpu == gpu_rules()
    assert all("gpu" not in resources for resources in overrides.values())
    assert settings["default-resources"]["slurm_partition"] != "gpu"


class Resources(dict):
    __getattr__ = dict.__getitem__


@pytest.mark.parametrize(("gpu", "expected"), [(0, ""), (1, " --gpus=1")])
def test_plugin_maps_gpu_resource(gpu, expected):
    """The installed executor plugin turns `gpu=N` into `--gpus=N` only when N > 0."""
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
    submit = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    job = SimpleNamespace(resources=Resources(gpu=gpu, mem_mb=2000, runtime=120), threads=2)
    assert utils.set_gres_string(job) == expected
    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "x", "account": "", "partition": "",
              "workdir": "."}
    call = submit.get_submit_command(job, params)
    assert "--gpus" not in call and "--gres" not in call
    assert "--mem 2000" in call and "--cpus-per-task=2" in call
