"""The ``d2lv`` command line: one subcommand per pipeline step, one module per stage.

Each Snakemake rule calls exactly one of these, so every step can also be run
(and debugged) by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from d2lv import __version__
from d2lv.cli import bench, descriptor, detect, evaluation, fusion, local, prepare, report, synth
from d2lv.errors import D2lvError

STAGES = (prepare, detect, local, descriptor, fusion, evaluation, report, synth, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2lv",
        description="Image copy detection: which queries are edited copies of which references. "
        "Each subcommand is one step of the Snakemake workflow; run `snakemake` at the repository root "
        "to run them all.",
    )
    parser.add_argument("--version", action="version", version=f"d2lv {__version__}")
    sub = parser.add_subparsers(title="steps", metavar="COMMAND", required=True)
    for stage in STAGES:
        stage.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a d2lv error (or a bad value or missing file) is one line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (D2lvError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"d2lv {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0
