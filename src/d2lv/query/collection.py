"""A built collection: what the query side of a finished run reads, recorded in ``OUT/collection.json``.

The workflow's last step over the references (rule ``collection``, ``d2lv collection``) names every file a
query is matched against (the merged local index, the reference feature stores, the whitened global
descriptors, the PDQ hashes, the fitted merge, the models' weights) and the run's resolved config, so that
``d2lv query`` and ``d2lv serve`` match one image as the workflow would, with the same settings. Its
``version`` is a digest of the config and of each file's size and time: a run that added references writes
a new version, and a running service reloads when it sees one.

Paths inside the results folder are stored relative to it, so a results folder can be moved or copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from d2lv.errors import InputError
from d2lv.io import atomic

COLLECTION_FILE = "collection.json"
#: The layout of collection.json; a reader refuses another.
FORMAT = 1
#: The file that withdraws references from a collection's answers (one id per line, ``#`` comments).
WITHDRAWN_FILE = "withdrawn.txt"

#: The files of a collection, by name: each a list of paths (empty where the run does not have it).
FILE_NAMES = ("index", "lists", "catalogue", "stores", "manifests", "descriptors", "whitening", "background",
              "pdq", "model", "detector", "checkpoint", "head")


@dataclass(frozen=True)
class Collection:
    """A collection as ``collection.json`` records it, with its paths resolved."""

    folder: Path
    version: str
    config: dict[str, Any]
    files: dict[str, list[Path]]
    references: int
    created: str

    def file(self, name: str) -> Path | None:
        """The one file of ``name``, or None where the run does not have it."""
        paths = self.files[name]
        return paths[0] if paths else None

    @property
    def withdrawn_file(self) -> Path:
        return self.folder / WITHDRAWN_FILE


def collection_file(folder: str | os.PathLike) -> Path:
    return Path(folder) / COLLECTION_FILE


def write_collection(folder: str | os.PathLike, files: Mapping[str, Sequence[str | os.PathLike]],
                     config: Mapping[str, Any]) -> dict[str, Any]:
    """Record the collection in ``folder/collection.json`` (atomically: a reader sees the old or the new one)."""
    folder = Path(folder)
    unknown = set(files) - set(FILE_NAMES)
    if unknown:
        raise InputError(f"unknown collection files {sorted(unknown)}; expected some of {FILE_NAMES}")
    stored = {name: [_relative(path, folder) for path in files.get(name, [])] for name in FILE_NAMES}
    record = {
        "format": FORMAT,
        "version": _version(folder, stored, config),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "references": _count_rows(folder, stored["catalogue"]),
        "files": stored,
        "config": dict(config),
    }
    with atomic.replacing(collection_file(folder)) as partial, open(partial, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    return record


def read_collection(folder: str | os.PathLike) -> Collection:
    """The collection a run built in ``folder`` (its results folder).

    Raises:
        InputError: ``folder`` holds no collection.json (a run of an older d2lv, or not a results folder), or
            one this d2lv cannot read.
    """
    folder = Path(folder)
    path = collection_file(folder)
    if not path.is_file():
        raise InputError(f"{folder} holds no {COLLECTION_FILE}: point --collection at the results folder of a "
                         "finished run (snakemake ... --config results=OUT), or run the workflow again to write it")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not readable JSON ({err}); run the workflow again to rewrite it") from err
    if record.get("format") != FORMAT:
        raise InputError(f"{path} has format {record.get('format')}, this d2lv reads {FORMAT}; run the workflow "
                         "again with this d2lv")
    files = {name: [folder / p for p in record["files"].get(name, [])] for name in FILE_NAMES}
    missing = [str(p) for paths in files.values() for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{path} names files that are gone ({', '.join(missing[:5])}); run the workflow again")
    return Collection(folder, record["version"], record["config"], files, int(record["references"]),
                      record["created"])


def read_version(folder: str | os.PathLike) -> str | None:
    """The version ``folder/collection.json`` records now (None while there is none)."""
    try:
        return json.loads(collection_file(folder).read_text()).get("version")
    except (OSError, ValueError):
        return None


def read_withdrawn(path: str | os.PathLike) -> frozenset[str]:
    """The reference ids a withdrawn file lists (none when there is no such file)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _relative(path: str | os.PathLike, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else absolute."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(folder.resolve()))
    except ValueError:
        return str(absolute)


def _version(folder: Path, files: Mapping[str, list[str]], config: Mapping[str, Any]) -> str:
    """A digest of the config and of each file's name, size and time."""
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode())
    for name in FILE_NAMES:
        for path in files[name]:
            stat = (folder / path).stat()
            digest.update(f"{name}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _count_rows(folder: Path, catalogues: list[str]) -> int:
    return sum(pq.ParquetFile(folder / path).metadata.num_rows for path in catalogues)
