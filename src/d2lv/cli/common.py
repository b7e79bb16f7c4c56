"""What every ``d2lv`` subcommand module shares: how a subcommand is added, ``NAME=VALUE`` lists."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from d2lv.errors import D2lvError

Handler = Callable[[argparse.Namespace], None]
Subparsers = argparse._SubParsersAction


def add_command(sub: Subparsers, name: str, handler: Handler, summary: str,
                description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with its handler and ``--quiet``; ``summary`` is its line in the parent's ``--help``."""
    parser = sub.add_parser(name, help=summary, description=description or summary)
    parser.set_defaults(handler=handler, command=parser.prog.partition(" ")[2])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def named(items: Sequence[str]) -> list[tuple[str, str]]:
    """Parse ``NAME=VALUE`` arguments."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise D2lvError(f"expected NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def set_faiss_threads(threads: int) -> None:
    """OpenMP threads for faiss (0: leave faiss' default)."""
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)


def add_threads(parser: argparse.ArgumentParser, library: str = "faiss") -> None:
    parser.add_argument("--threads", type=int, default=0, help=f"{library} threads (0: {library}'s default)")
