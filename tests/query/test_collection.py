"""collection.json: what a run built, read back with its paths resolved; a version that follows the files."""

from __future__ import annotations

import json
import os

import pytest

from d2lv.errors import InputError
from d2lv.query import collection


@pytest.fixture
def built(tmp_path):
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    files = {"index": [out / "work" / "merged.faiss"], "stores": [out / "work" / "a.h5", out / "work" / "b.h5"]}
    for paths in files.values():
        for path in paths:
            path.write_bytes(b"x")
    import pandas as pd

    catalogue = out / "work" / "references.parquet"
    pd.DataFrame({"number": [0, 1, 2], "reference_id": ["r0", "r1", "r2"]}).to_parquet(catalogue)
    files["catalogue"] = [catalogue]
    detector = tmp_path / "elsewhere" / "detector.pt"
    detector.parent.mkdir()
    detector.write_bytes(b"weights")
    files["detector"] = [detector]
    return out, files


def test_a_collection_reads_back_with_its_paths_and_counts(built):
    out, files = built
    record = collection.write_collection(out, files, {"local": {"knn": 3}})
    stored = json.loads(collection.collection_file(out).read_text())
    assert stored["files"]["stores"] == ["work/a.h5", "work/b.h5"]  # inside the results folder: relative
    assert stored["files"]["detector"] == [str(files["detector"][0].resolve())]
    read = collection.read_collection(out)
    assert read.version == record["version"] and read.references == 3 and read.config == {"local": {"knn": 3}}
    assert read.files["stores"] == [out / "work" / "a.h5", out / "work" / "b.h5"]
    assert read.file("pdq") is None and read.file("index") == out / "work" / "merged.faiss"


def test_the_version_follows_the_files_and_the_config(built):
    out, files = built
    first = collection.write_collection(out, files, {"k": 1})["version"]
    assert collection.write_collection(out, files, {"k": 1})["version"] == first
    assert collection.write_collection(out, files, {"k": 2})["version"] != first
    stat = files["stores"][1].stat()
    os.utime(files["stores"][1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert collection.write_collection(out, files, {"k": 1})["version"] not in (first, None)
    assert collection.read_version(out) == collection.read_collection(out).version


def test_a_folder_without_a_collection_or_with_a_file_gone_says_what_to_do(built, tmp_path):
    out, files = built
    with pytest.raises(InputError, match="holds no collection.json"):
        collection.read_collection(tmp_path)
    collection.write_collection(out, files, {})
    files["stores"][0].unlink()
    with pytest.raises(InputError, match="names files that are gone"):
        collection.read_collection(out)


def test_withdrawn_ids_skip_comments_and_blank_lines(tmp_path):
    path = tmp_path / collection.WITHDRAWN_FILE
    assert collection.read_withdrawn(path) == frozenset()
    path.write_text("# takedown 2026-12-06\nR000001\n\n  R000007  \n")
    assert collection.read_withdrawn(path) == {"R000001", "R000007"}
