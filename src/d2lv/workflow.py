"""Helpers the Snakefile calls at parse time: which shards exist and which files feed them.

Listing files is cheap and happens here; decoding them is work and happens in
rules. A folder that the demo rule has yet to build is planned from the files
the demo will write.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from snakemake.io import contains_wildcard

from d2lv.errors import D2lvError
from d2lv.io import isc
from d2lv.io.images import IMAGE_EXTENSIONS, FolderListing, list_folder, reason_counts
from d2lv.io.manifest import plan_shards
from d2lv.options import Options
from d2lv.synth import calibration, demo


class UnknownStepError(D2lvError):
    """A benchmark system that names a step no rule of the workflow runs (a renamed rule would silently drop
    its cost from the timings)."""


def check_steps(steps: Mapping[str, str], rules: Sequence[str]) -> None:
    """Check that every step of ``steps`` (system -> comma-separated ``rule`` or ``rule/view``) names a rule.

    Raises:
        UnknownStepError: naming the system and the step.
    """
    known = set(rules)
    for system, listed in steps.items():
        unknown = [step for step in listed.split(",") if step.split("/")[0] not in known]
        if unknown:
            raise UnknownStepError(f"benchmark system {system!r} pays for {unknown}, which no rule of the workflow "
                                   f"runs; rename the step in BENCH_STEPS (rules/common.smk)")


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


def list_set(folder: str | os.PathLike, set_name: str, demo_dir: str | os.PathLike | None) -> FolderListing:
    """Every file of a set, found on disk or planned by the demo builder; fails when the set has no image file."""
    if demo_dir is not None and _same_path(folder, Path(demo_dir) / set_name):
        return FolderListing(demo.planned_demo_files(Path(demo_dir))[set_name], [])
    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"{set_name} folder {str(folder)!r} does not exist; set it with "
            f"`snakemake --config {set_name}=DIR` (a folder of images, searched recursively)"
        )
    return _require_images(list_folder(folder), folder, set_name)


def _plan(paths: Sequence[Path], shard_size: int) -> dict[str, list[str]]:
    """Shard name -> ``paths`` of that shard, as strings (ready to be Snakemake inputs)."""
    return {name: [str(p) for p in shard] for name, shard in plan_shards(paths, shard_size).items()}


def shard_plan(listing: FolderListing, shard_size: int) -> dict[str, list[str]]:
    """Shard name -> image paths of a listed set."""
    return _plan(listing.images, shard_size)


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


def trackable(paths: Sequence[str]) -> list[str]:
    """The ``paths`` that a rule can take as Snakemake inputs.

    Snakemake reads ``{name}`` in an input path as a wildcard, and an input function's paths
    cannot escape it (``{{name}}`` is read as a wildcard too), so an image named ``a{b}.jpg`` would
    stop the whole workflow. Such images are still processed (the manifest lists its folder itself),
    but tracked by :func:`untracked_stamps` instead.
    """
    return [path for path in paths if not contains_wildcard(path)]


def untracked_stamps(paths: Sequence[str]) -> list[str]:
    """Path, size and modification time of each of ``paths`` that :func:`trackable` leaves out.

    As a rule's param, a change to such a file reruns the rule as a change to an input would.
    """
    stamps = []
    for path in paths:
        if contains_wildcard(path):
            stat = os.stat(path)
            stamps.append(f"{path} {stat.st_size} {stat.st_mtime_ns}")
    return stamps


def refused_files(listing: FolderListing) -> list[str]:
    """The files and folders of a listed set that are not decoded (``skipped.csv`` lists them with the reason)."""
    return [str(path) for path, _ in listing.refused]


def calibration_plan(folder: str | os.PathLike, n_queries: int, shard_size: int) -> dict[str, list[str]]:
    """Shards of the calibration set that :func:`d2lv.synth.calibration.make_calibration` will write in ``folder``."""
    return _plan(calibration.planned_calibration_files(Path(folder), n_queries), shard_size)


def near_plan(folder: str | os.PathLike, n_queries: int, near_share: float, graphics_share: float,
              shard_size: int) -> dict[str, list[str]]:
    """Shards of the calibration pseudo-references that :func:`~d2lv.synth.calibration.make_calibration` writes."""
    return _plan(calibration.planned_near_files(Path(folder), n_queries, near_share, graphics_share), shard_size)


def _demo_file(config: dict, filename: str) -> str | None:
    """A file of the demo set, when the queries are the demo's."""
    demo_dir = config.get("demo_dir")
    if demo_dir and _same_path(config["queries"], Path(demo_dir) / "queries"):
        return str(Path(demo_dir) / filename)
    return None


def ground_truth(config: dict) -> str | None:
    """The ground-truth CSV to evaluate against: configured, or the demo's own for the demo set."""
    return config.get("ground_truth") or _demo_file(config, isc.GROUND_TRUTH_FILE)


def categories(config: dict) -> str | None:
    """The recipe of each query (for recall per family): configured, or the demo's own."""
    return config.get("categories") or _demo_file(config, isc.CATEGORIES_FILE)


def repository_root() -> Path:
    """The checkout holding the Snakefile (d2lv is installed editable from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "Snakefile").is_file():
        raise FileNotFoundError(
            f"no Snakefile next to the installed d2lv package (looked in {root}); run `snakemake` "
            "from a d2lv checkout installed with `pip install -e .`"
        )
    return root


def snakemake_command(target: str, cores: str | int, extra_config: list[str] | None = None,
                      configfiles: list[str] | None = None, **config: object) -> list[str]:
    """The Snakemake command line that builds ``target`` with the given config keys.

    ``configfiles`` are layered over config.yaml first (nested keys are set there), then
    ``config`` and ``extra_config`` (``KEY=VALUE``) override top-level keys.
    """
    pairs = [f"{key}={value}" for key, value in config.items()] + list(extra_config or [])
    files = [str(Path(f).resolve()) for f in configfiles or []]
    return [sys.executable, "-m", "snakemake", "-s", str(repository_root() / "Snakefile"), target,
            "--cores", str(cores), *(["--configfile", *files] if files else []), "--config", *pairs]


def flags(config: Mapping, *groups: type[Options]) -> str:
    """The command-line options that pass each option group's config keys to a ``d2lv`` subcommand, quoted.

    A rule writes ``params: options=flags(config, VerifyParams)`` and ``{params.options}`` in its shell
    command, so that neither the option names nor the config keys are spelt out in the rule.
    """
    return shlex.join(flag for group in groups for flag in group.from_config(config).to_flags())


def path_option(flag: str, paths: str | Sequence[str]) -> str:
    """``flag`` and ``paths`` (an optional input: one file, a list, or none), shell-quoted; empty without paths.

    A rule writes ``params: crops=lambda wildcards, input: path_option("--crops", input.crops)`` and
    ``{params.crops}`` in its shell command, so that the option is left out when the input is.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    return shlex.join([flag, *paths]) if paths else ""
