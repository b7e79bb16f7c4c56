"""`d2lv query` against a collection the workflow built: the workflow's scores, to the last bit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from d2lv.io.images import image_id, load_image
from d2lv.query import answers, collection
from d2lv.query.matcher import Matcher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def matcher(built) -> Matcher:
    return Matcher(collection.read_collection(built.out))


def _same(a: pd.Series, b: pd.Series) -> bool:
    """Equal values, missing ones equal (dtypes aside: a column every pair of a batch lacks is float there)."""
    return all((x == y) or (pd.isna(x) and pd.isna(y)) for x, y in zip(a, b, strict=True))


def test_a_query_alone_gets_the_workflows_rows_to_the_last_bit(built, matcher):
    """Every query of the run, matched alone: the same verified pairs, in the same order, with every column of
    matches.parquet equal (scores, similarities, votes, distances, inliers), though the workflow searched
    them in shards of four with their neighbours."""
    batch = pd.read_parquet(built.out / "matches.parquet")
    paths = sorted(built.queries.iterdir())
    assert len(paths) == 12 and batch.query_id.nunique() == 12
    for path in paths:
        mine = matcher.match(load_image(path), image_id(path)).pairs.reset_index(drop=True)
        theirs = batch[batch.query_id == image_id(path)].reset_index(drop=True)
        assert list(mine.reference_id) == list(theirs.reference_id), path.name
        different = [column for column in theirs.columns if not _same(mine[column], theirs[column])]
        assert not different, (path.name, different)


def _copies(built) -> pd.DataFrame:
    """The demo's copy queries and their references."""
    truth = pd.read_csv(built.queries.parent.parent / "demo" / "ground_truth.csv", keep_default_na=False)
    return truth[truth.reference_id != ""]


def test_query_prints_the_workflows_matches_and_json_evidence(built):
    paths = [built.queries / f"{query_id}.jpg" for query_id in sorted(_copies(built).query_id)[:2]]
    command = [sys.executable, "-m", "d2lv.cli", "query", "--quiet", *map(str, paths), "--collection", str(built.out)]
    csv = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    printed = pd.read_csv(pd.io.common.StringIO(csv), dtype={"query_id": str, "reference_id": str})
    expected = pd.read_csv(built.out / "matches.csv", dtype={"query_id": str, "reference_id": str})
    expected = expected[expected.query_id.isin([p.stem for p in paths])].sort_values("query_id", kind="stable")
    pd.testing.assert_frame_equal(printed.reset_index(drop=True), expected.reset_index(drop=True), check_exact=True)

    found = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True, check=True).stdout)
    first = found[0]["matches"][0]
    assert first["reference_id"] == expected.reference_id.iloc[0] and first["rank"] == 1
    assert first["verification"]["local"]["n_inliers"] >= 10
    assert {"local", "global"} <= set(first["recall"]) and "similarity" in first["recall"]["global"]


def test_an_unreadable_image_is_reported_and_the_others_answered(built, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    good = sorted(built.queries.iterdir())[0]
    result = subprocess.run([sys.executable, "-m", "d2lv.cli", "query", "--quiet", str(broken), str(good),
                             "--collection", str(built.out)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "broken.jpg: skipped: unreadable image" in result.stderr and "1 of 2 images" in result.stderr
    assert good.stem in result.stdout


def test_a_results_folder_without_a_collection_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "-m", "d2lv.cli", "query", "x.jpg", "--collection", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "holds no collection.json" in result.stderr


def test_compare_scores_a_copy_above_an_unrelated_pair(built, matcher):
    copy = _copies(built).iloc[0]
    query = load_image(built.queries / f"{copy.query_id}.jpg")
    source = load_image(next(built.references.glob(f"{copy.reference_id}.*")))
    other = load_image(next(p for p in sorted(built.references.iterdir()) if p.stem != copy.reference_id))
    pair = matcher.compare(query, source)
    assert len(pair.pairs) == 1 and pair.pairs.score.iloc[0] > 0.5
    assert pair.pairs.verify_local_n_inliers.iloc[0] >= 10
    unrelated = matcher.compare(query, other).pairs
    assert unrelated.empty or unrelated.score.iloc[0] < 0.1


def test_a_withdrawn_reference_is_never_returned(built, matcher):
    path = sorted(built.queries.iterdir())[0]
    answer = matcher.match(load_image(path), path.stem)
    best = answer.pairs.reference_id.iloc[0]
    kept = answer.without({best})
    assert best not in set(kept.pairs.reference_id) and list(kept.pairs["rank"]) == list(range(1, len(kept.pairs) + 1))
    assert list(kept.pairs.score) == list(answer.pairs.score.iloc[1:])  # the others keep their scores
    document = answers.to_json(kept, None)
    assert best not in {m["reference_id"] for m in document["matches"]}


def test_json_evidence_names_the_crop_that_spoke(built, matcher, tmp_path):
    """A query pasted small onto a backdrop: detected, cropped, and the crop view's verification names its crop."""
    reference = next(p for p in sorted(built.references.iterdir()))
    photo = Image.open(reference).convert("RGB")
    backdrop = Image.fromarray(np.full((600, 800, 3), 235, np.uint8))
    backdrop.paste(photo.resize((photo.width // 2, photo.height // 2)), (400, 250))
    answer = matcher.match(np.asarray(backdrop), "pasted")
    document = answers.to_json(answer, None)
    top = document["matches"][0]
    assert top["reference_id"] == reference.stem and document["boxes"]
    assert top["verification"]["local_crop"]["crop_id"] in {b["crop_id"] for b in document["boxes"]}
