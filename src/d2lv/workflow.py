"""Helpers the Snakefile calls at parse time: which shards exist and which files feed them.

Listing files is cheap and happens here; decoding them is work and happens in
rules. A folder that the demo rule has yet to build is planned from the files
the demo will write.
"""

from __future__ import annotations

import os
from pathlib import Path

from d2lv import datasets
from d2lv.images import find_images
from d2lv.manifest import plan_shards


def _same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def list_set(folder: str | os.PathLike, set_name: str, demo_dir: str | os.PathLike | None) -> list[Path]:
    """Image files of a set: found on disk, or planned by the demo builder."""
    if demo_dir is not None and _same_path(folder, Path(demo_dir) / set_name):
        return datasets.planned_demo_files(Path(demo_dir))[set_name]
    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"{set_name} folder {str(folder)!r} does not exist; set it with "
            f"`snakemake --config {set_name}=DIR` (a folder of images, searched recursively)"
        )
    return list(find_images(folder))


def shard_plan(folder: str | os.PathLike, set_name: str, shard_size: int,
               demo_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Shard name -> image paths (as strings, ready to be Snakemake inputs)."""
    plan = plan_shards(list_set(folder, set_name, demo_dir), shard_size)
    return {name: [str(p) for p in paths] for name, paths in plan.items()}


def ground_truth(config: dict) -> str | None:
    """The ground-truth CSV to evaluate against: configured, or the demo's own for the demo set."""
    if config.get("ground_truth"):
        return config["ground_truth"]
    demo_dir = config.get("demo_dir")
    if demo_dir and _same_path(config["queries"], Path(demo_dir) / "queries"):
        return str(Path(demo_dir) / "ground_truth.csv")
    return None
