"""A collection the workflow built (the demo set in user folders, small settings), shared by the query tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from workflow.test_workflow import snakemake, workdir_with_config

from d2lv.synth import demo


@dataclass(frozen=True)
class Built:
    """A finished run: its working folder, command line, input folders and results folder."""

    work: Path
    contract: tuple[str, ...]
    queries: Path
    references: Path
    out: Path


def build(root: Path) -> Built:
    """Run the workflow on the demo set as user folders, references in shards of 4 (models fitted on the
    first): adding a reference later reruns its shard and the merges, not the fitted models."""
    demo.make_demo(root / "demo")
    queries, references = root / "in" / "q", root / "in" / "r"
    shutil.copytree(root / "demo" / "queries", queries)
    shutil.copytree(root / "demo" / "references", references)
    work = workdir_with_config(root / "run", {"fit_images": 1})
    contract = ("--config", f"queries={queries}", f"references={references}", f"results={root / 'out'}",
                "shard_size=4")
    snakemake(work, *contract)
    return Built(work, contract, queries, references, root / "out")


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    return build(tmp_path_factory.mktemp("collection"))
