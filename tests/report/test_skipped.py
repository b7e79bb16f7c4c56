"""skipped.csv: every file under an input folder that does not take part is listed once, with the reason."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from d2lv.io import isc, tables
from d2lv.io.images import find_images, list_folder
from d2lv.io.manifest import build_manifest
from d2lv.io.paths import write_refusal_list
from d2lv.report import skipped


def hostile_folder(root: Path, photo: object) -> Path:
    """A real photo among what a Mac, a phone and git leave next to it, and one broken JPEG."""
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "pack").write_bytes(b"\0" * 64)
    Image.fromarray(photo).save(root / "photo.jpg", quality=90)
    (root / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")  # shares its stem, so its id, with photo.jpg
    (root / "._photo.jpg").write_bytes(b"\0\x05\x16\x07AppleDouble")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "broken.jpg").write_bytes(b"")
    return root


@pytest.mark.parametrize("listing", ["--queries-folder", "--queries-refused"])
def test_skipped_csv_lists_every_file_that_does_not_take_part(tmp_path, chelsea, listing):
    """Listed now (by hand), or from the refusal list the workflow wrote when it listed the folder."""
    folder = hostile_folder(tmp_path / "queries", chelsea)
    manifest = tmp_path / "0000.parquet"
    tables.write_table(build_manifest(list(find_images(folder)), progress=False), manifest, tables.MANIFEST)
    refused = tmp_path / "refused.json"
    write_refusal_list(refused, list_folder(folder).refused)
    out = tmp_path / "skipped.csv"
    where = folder if listing == "--queries-folder" else refused
    result = subprocess.run(["d2lv", "skipped", listing, str(where), "--queries-manifests", str(manifest),
                             "-o", str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = isc.read_id_csv(out, tables.SKIPPED.names)
    assert list(rows.columns) == tables.SKIPPED.names and (rows.set == "queries").all()
    by_path = {Path(path).relative_to(folder).as_posix(): (stage, reason)
               for path, stage, reason in zip(rows.path, rows.stage, rows.reason)}
    assert by_path == {
        ".DS_Store": ("listing", "hidden file"),
        ".git": ("listing", "hidden folder, not searched (tool state such as .git or .snakemake)"),
        "._photo.jpg": ("listing", "AppleDouble metadata file (macOS keeps a file's attributes there), not an image"),
        "broken.jpg": ("manifest", "empty file (0 bytes)"),
        "logo.svg": ("listing", "unsupported format .svg"),
        "photo.heic": ("listing", "unsupported format .heic"),
    }
    assert dict(zip(rows.path, rows.id))[str(folder / "photo.heic")] == "photo"  # the id it would have had


def test_collect_without_a_folder_reports_only_what_the_manifests_refused(tmp_path, chelsea):
    folder = hostile_folder(tmp_path / "references", chelsea)
    manifest = tmp_path / "0000.parquet"
    tables.write_table(build_manifest(list(find_images(folder)), progress=False), manifest, tables.MANIFEST)
    frame = skipped.collect("references", [manifest], [], min_keypoints=10)
    pd.testing.assert_frame_equal(frame[["id", "stage"]], pd.DataFrame({"id": ["broken"], "stage": ["manifest"]}))
