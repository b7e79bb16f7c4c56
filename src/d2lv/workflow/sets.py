"""The files of each set, listed when the Snakefile is parsed, and cut into shards.

Listing files is cheap and happens here; decoding them is work and happens in rules. A folder
that the demo rule has yet to build is listed from the files the demo will write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from d2lv.errors import D2lvError
from d2lv.io.images import IMAGE_EXTENSIONS, FolderListing, list_folder, reason_counts
from d2lv.io.manifest import plan_shards
from d2lv.synth import demo


def _same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()


class EmptySetError(D2lvError):
    """An input folder that holds no image file at all: nothing to decode, so the run stops before it starts."""


def _require_images(listing: FolderListing, folder: str | os.PathLike, set_name: str) -> FolderListing:
    if listing.images:
        return listing
    where = f"{set_name} folder {str(folder)!r}"
    elsewhere = f"or point `--config {set_name}=DIR` at the folder that holds the images"
    if not listing.refused:
        raise EmptySetError(f"{where} is empty: put the {set_name} images in it (it is searched recursively), "
                            f"{elsewhere}")
    refused = reason_counts(reason for _, reason in listing.refused)
    raise EmptySetError(
        f"{where} holds no image file: everything in it was set aside ({refused}); d2lv reads "
        f"{', '.join(sorted(IMAGE_EXTENSIONS))}: convert the images to one of these, {elsewhere}"
    )


def is_demo_set(folder: str | os.PathLike, set_name: str, demo_dir: str | os.PathLike | None) -> bool:
    """Whether ``folder`` is the demo's ``set_name`` folder, whose files rule demo writes."""
    return bool(demo_dir) and _same_path(folder, Path(demo_dir) / set_name)


def list_set(folder: str | os.PathLike, set_name: str, demo_dir: str | os.PathLike | None) -> FolderListing:
    """Every file of a set, found on disk or planned by the demo builder; fails when the set has no image file."""
    if is_demo_set(folder, set_name, demo_dir):
        return FolderListing([str(path) for path in demo.planned_demo_files(Path(demo_dir))[set_name]], [])
    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"{set_name} folder {str(folder)!r} does not exist; set it with "
            f"`snakemake --config {set_name}=DIR` (a folder of images, searched recursively)"
        )
    return _require_images(list_folder(folder), folder, set_name)


def shard_plan(paths: Sequence[str | os.PathLike], shard_size: int) -> dict[str, list[str]]:
    """Shard name -> ``paths`` of that shard, as strings (ready to be Snakemake inputs)."""
    return {name: [str(p) for p in shard] for name, shard in plan_shards(paths, shard_size).items()}


def fit_shards(plan: Mapping[str, Sequence[str]], min_images: int) -> list[str]:
    """The first shards of ``plan`` that together hold at least ``min_images`` images (all, if fewer).

    Models fitted on the references learn from these. Shards are drawn by hash, so they are a random
    sample of the collection; a tiny shard size widens the sample instead of shrinking it.
    """
    chosen: list[str] = []
    held = 0
    for name, images in plan.items():
        if held >= min_images:
            break
        chosen.append(name)
        held += len(images)
    return chosen
