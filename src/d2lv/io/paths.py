"""Lists of file paths that the workflow writes when it is parsed and its jobs read: each shard's images, one
per line, and the files a folder's listing set aside, with the reason (JSON: their names may hold anything).

A list changes (and its modification time with it) only when its paths do, so a rule that takes one as an
input reruns exactly when the set of files it names changes. Names with a line break cannot be listed one
per line; :func:`d2lv.io.images.refusal_reason` sets them aside, so they never reach a path list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from d2lv.io.atomic import write_if_changed


def write_path_list(path: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> bool:
    """Write ``paths``, one per line, unless ``path`` lists them already; returns whether it wrote."""
    return write_if_changed(path, "".join(f"{os.fspath(item)}\n" for item in paths))


def read_path_list(path: str | os.PathLike) -> list[str]:
    """The paths a list names, in order."""
    return Path(path).read_text().split("\n")[:-1]


def write_refusal_list(path: str | os.PathLike, refused: Iterable[tuple[str, str]]) -> bool:
    """Write the ``(path, reason)`` pairs unless ``path`` holds them already; returns whether it wrote."""
    return write_if_changed(path, json.dumps(list(refused), indent=0) + "\n")


def read_refusal_list(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The ``(path, reason)`` pairs a refusal list names, in order."""
    return [(item, reason) for item, reason in json.loads(Path(path).read_text())]
