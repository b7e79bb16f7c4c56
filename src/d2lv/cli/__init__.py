"""The ``d2lv`` command line: one subcommand per pipeline step, one module per stage.

Each Snakemake rule calls exactly one of these, so every step can also be run
(and debugged) by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from d2lv import __version__
from d2lv.cli import bench, config, descriptor, detect, evaluation, local, manifest, merge, pdq, query, report, synth
from d2lv.errors import D2lvError

STAGES = (manifest, detect, local, descriptor, pdq, merge, query, evaluation, report, synth, bench, config)


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


#: What the user can fix, reported as one line and exit code 2: d2lv's own errors, and paths that are
#: missing or of the wrong kind. Anything else is a bug in d2lv and keeps its traceback.
USER_ERRORS = (D2lvError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def error_line(command: str, err: BaseException) -> str:
    """``d2lv <command>: error: <message>`` on one line, however many lines the message has."""
    return f"d2lv {command}: error: {' '.join(str(err).split())}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's error is one line on stderr and exit code 2 (as argparse's usage errors).

    Under Snakemake stderr goes to the rule's log, which the console shows for a failed job
    (``show-failed-logs`` in the workflow profile), so that line is what the user reads there.
    """
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except USER_ERRORS as err:
        print(error_line(args.command, err), file=sys.stderr)
        return 2
    return 0
