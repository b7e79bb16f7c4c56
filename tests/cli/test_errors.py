"""A user's error is one line, `d2lv <subcommand>: error: ...`, and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import subprocess

import pytest
from PIL import Image

from d2lv import cli
from d2lv.cli import manifest
from d2lv.errors import D2lvError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["d2lv", *args], capture_output=True, text=True, timeout=120)


def assert_one_error_line(result: subprocess.CompletedProcess, command: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"d2lv {command}: error: "), result.stderr
    return lines[0]


def test_two_images_sharing_an_id_is_one_line_naming_both(tmp_path, chelsea):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(chelsea).save(tmp_path / "in" / folder / "cat.jpg")
    line = assert_one_error_line(run_cli("manifest", str(tmp_path / "in"), "-o", str(tmp_path / "m.parquet")),
                                 "manifest")
    assert str(tmp_path / "in" / "a" / "cat.jpg") in line and "rename one of them" in line


def test_a_file_that_is_not_a_table_is_one_line_naming_it(tmp_path):
    notes = tmp_path / "0000.parquet"
    notes.write_text("not Parquet\n")
    line = assert_one_error_line(run_cli("skipped", "--queries-manifests", str(notes), "-o",
                                         str(tmp_path / "skipped.csv")), "skipped")
    assert f"{notes} is not a d2lv table" in line
    assert not (tmp_path / "skipped.csv").exists()


def test_a_ground_truth_without_its_columns_is_one_line(tmp_path):
    (tmp_path / "matches.csv").write_text("query_id,reference_id,score\nq,r,1\n")
    (tmp_path / "gt.csv").write_text("query,reference\nq,r\n")
    line = assert_one_error_line(run_cli("evaluate", str(tmp_path / "matches.csv"), "--ground-truth",
                                         str(tmp_path / "gt.csv")), "evaluate")
    assert "needs columns query_id,reference_id" in line


def test_a_missing_input_folder_is_one_line(tmp_path):
    line = assert_one_error_line(run_cli("manifest", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m.parquet")),
                                 "manifest")
    assert "nowhere" in line


def test_a_message_over_several_lines_is_printed_on_one(monkeypatch, capsys, tmp_path):
    def fails(args):
        raise D2lvError("first line\n  second line")

    monkeypatch.setattr(manifest, "_skipped", fails)
    assert cli.main(["skipped", "-o", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err == "d2lv skipped: error: first line second line\n"


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    def bug(args):
        raise KeyError("no such column")

    monkeypatch.setattr(manifest, "_skipped", bug)
    with pytest.raises(KeyError):
        cli.main(["skipped", "-o", str(tmp_path / "x.csv")])
