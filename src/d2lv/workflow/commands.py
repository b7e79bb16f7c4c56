"""How the package talks to Snakemake: the command line that runs the workflow, and the options a rule passes
to its ``d2lv`` subcommand."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from d2lv.options import Options


def repository_root() -> Path:
    """The checkout holding the Snakefile (d2lv is installed editable from it)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "Snakefile").is_file():
        raise FileNotFoundError(
            f"no Snakefile next to the installed d2lv package (looked in {root}); run `snakemake` "
            "from a d2lv checkout installed with `pip install -e .`"
        )
    return root


def snakemake_command(target: str, cores: str | int, extra_config: list[str] | None = None,
                      configfiles: list[str] | None = None, dry_run: bool = False, **config: object) -> list[str]:
    """The Snakemake command line that builds ``target`` with the given config keys (only plans it, quietly,
    with ``dry_run``).

    ``configfiles`` are layered over config.yaml first (nested keys are set there), then
    ``config`` and ``extra_config`` (``KEY=VALUE``) override top-level keys.
    """
    pairs = [f"{key}={value}" for key, value in config.items()] + list(extra_config or [])
    files = [str(Path(f).resolve()) for f in configfiles or []]
    return [sys.executable, "-m", "snakemake", "-s", str(repository_root() / "Snakefile"), target,
            "--cores", str(cores), *(["--dry-run", "--quiet"] if dry_run else []),
            *(["--configfile", *files] if files else []), "--config", *pairs]


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
