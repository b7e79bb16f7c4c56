"""Whole files or none: every result a reader may open while it is being written goes through here.

A writer writes a temporary file in the target's folder and renames it onto the target when it is done
(:func:`os.replace`, atomic on one file system), so a reader sees the old file or the new one, never half
of one, and an interrupted writer leaves neither a partial file nor its temporary behind. (The merged
local index is two files, the index naming its lists file; :func:`d2lv.local.index.merge_shards` writes
both in a temporary folder beside them, under their own names, and renames them the same way.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_path(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path``, with the same last suffix (pandas picks compression by it)."""
    target = Path(path)
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial{target.suffix}")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; on success it replaces ``path``, on failure it is removed.

    The temporary file is not created here: the writer creates it, so it gets the permissions any new
    file gets (the umask's), as ``path`` would have.
    """
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` to ``path`` (atomically, creating its folder) unless it holds that text already, so that
    its modification time says when its content last changed; returns whether it wrote."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as partial:
        partial.write_text(text)
    return True
