"""The merge: calibration copies of the references, the sum and calibrated modes, the model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from d2lv.cli import main
from d2lv.io import isc, tables
from d2lv.io.images import image_id
from d2lv.merge import features as output
from d2lv.merge import scoring
from d2lv.merge.params import MODES
from d2lv.synth import calibration, demo, families, layout
from d2lv.synth.photos import Tile


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo.make_demo(out, progress=False)
    return out / "references"


@pytest.fixture(scope="module")
def calibrated_run(references, tmp_path_factory) -> Path:
    """Every step of a local-only pipeline on 30 calibration copies, through the CLI, then fit-merge."""
    work = tmp_path_factory.mktemp("run")
    run = lambda *args: main([*map(str, args)])  # noqa: E731
    assert run("manifest", "--quiet", references, "-o", work / "refs.parquet") == 0
    # no graphic copies: their pseudo-references (cal/near/) are not searched here
    assert run("make-calibration", "--quiet", work / "refs.parquet", "-o", work / "cal", "--queries", 30,
               "--graphics", 0) == 0
    assert run("manifest", "--quiet", work / "cal" / "queries", "--shard", 0, "--num-shards", 1,
               "-o", work / "cal.parquet") == 0
    for name in ("refs", "cal"):
        assert run("sift", "--quiet", work / f"{name}.parquet", "-o", work / f"{name}.h5") == 0
    assert run("local-train", "--quiet", work / "refs.h5", "--references", 8, "-o", work / "trained.faiss") == 0
    assert run("local-add", "--quiet", work / "refs.h5", "--trained", work / "trained.faiss", "--shard", 0,
               "-o", work / "shard.faiss", "--catalogue", work / "shard.parquet") == 0
    assert run("local-merge", "--quiet", "--trained", work / "trained.faiss", "--shards", work / "shard.faiss",
               "--catalogues", work / "shard.parquet", "-o", work / "refs.faiss",
               "--catalogue", work / "catalogue.parquet") == 0
    assert run("local-recall", "--quiet", "--index", work / "refs.faiss", "--catalogue", work / "catalogue.parquet",
               "--queries", work / "cal.h5", "-o", work / "candidates.parquet") == 0
    assert run("verify", "--quiet", "--pairs", work / "candidates.parquet", "--queries", work / "cal.h5",
               "--references", work / "refs.h5", "--branch", "local", "-o", work / "scores.parquet") == 0
    inputs = ["--local", work / "candidates.parquet", "--scores", work / "scores.parquet"]
    assert run("fit-merge", *inputs, "--ground-truth", work / "cal" / "ground_truth.csv",
               "--ignore", work / "cal" / "overlaps.csv", "-o", work / "model.json") == 0
    for mode in MODES:
        assert run("matches", "--quiet", *inputs, "--mode", mode, "--model", work / "model.json",
                   "-o", work / f"{mode}.csv", "--parquet", work / f"{mode}.parquet") == 0
    return work


def test_calibration_copies_name_their_source_and_cover_every_family(references, tmp_path):
    paths = sorted(references.glob("*.jpg"))
    calibration.make_calibration(paths, tmp_path / "a", 22, progress=False)
    calibration.make_calibration(paths, tmp_path / "b", 22, progress=False)
    truth = pd.read_csv(tmp_path / "a" / "ground_truth.csv", dtype=str)
    assert len(truth) == 22 and set(truth.reference_id) <= {image_id(p) for p in paths}
    categories = pd.read_csv(tmp_path / "a" / "categories.csv", dtype=str)
    assert categories.recipe.value_counts().to_dict() == dict.fromkeys(families.FAMILIES, 2)
    # A copy pasted onto (or framed by) another reference names that backdrop, never its own source.
    backdrops = pd.read_csv(tmp_path / "a" / "overlaps.csv", dtype=str).merge(truth, on="query_id")
    placed = categories[categories.recipe.isin(["paste", "padding", "combo"])]
    assert set(backdrops.query_id) == set(placed.query_id)
    assert (backdrops.reference_id_x != backdrops.reference_id_y).all()
    files = layout.planned_calibration_files(tmp_path / "a", 22)
    assert all(f.exists() for f in files)
    assert [f.read_bytes() for f in files] == [(tmp_path / "b" / "queries" / f.name).read_bytes() for f in files]


def test_half_copies_make_their_other_half_a_near_duplicate_negative(references, tmp_path):
    paths = sorted(references.glob("*.jpg"))
    plan = calibration.plan_calibration(paths, 20, near_share=0.25)
    halved = {i: q for i, q in enumerate(plan.queries) if isinstance(q.source, Tile)}
    assert len(halved) == len(plan.near) == 5
    for query in halved.values():  # a half-copy still copies its reference; its other half is a pseudo-reference
        assert query.reference_id == image_id(query.source.path)
        assert Tile(query.source.path, 1 - query.source.part) in plan.near.values()
    overlaps = set(calibration.overlapping_pairs(plan))
    for i, query in enumerate(plan.queries):
        for near, tile in plan.near.items():
            own_half = isinstance(query.source, Tile) and tile == Tile(query.source.path, 1 - query.source.part)
            same_photo = image_id(tile.path) == query.reference_id
            if own_half:
                assert (layout.query_id(i), near) not in overlaps  # the labelled near-duplicate negative
            elif same_photo:
                assert (layout.query_id(i), near) in overlaps  # part of the copied photo: left out, not a negative

    calibration.make_calibration(paths, tmp_path, 20, near_share=0.25, progress=False)
    near_files = layout.planned_near_files(tmp_path, 20, 0.25)
    assert [p.stem for p in near_files] == list(plan.near)
    for path, tile in zip(near_files, plan.near.values()):
        with Image.open(path) as half, Image.open(tile.path) as whole:
            assert half.height == whole.height and half.width < whole.width / 2  # the demo's photos are wide


def test_graphic_copies_copy_one_tile_whose_other_tile_is_a_negative(references, tmp_path):
    paths = sorted(references.glob("*.jpg"))
    calibration.make_calibration(paths, tmp_path, 20, near_share=0.25, graphics_share=0.25, progress=False)
    truth = pd.read_csv(tmp_path / "ground_truth.csv", dtype=str)
    copied = sorted(truth.reference_id[truth.reference_id.str.startswith("graphic")])
    assert copied == [layout.graphic_id(i, 0) for i in range(5)]
    written = sorted(p.stem for p in (tmp_path / layout.NEAR_DIR).glob("*.jpg"))
    assert written == sorted(p.stem for p in layout.planned_near_files(tmp_path, 20, 0.25, 0.25))
    assert {layout.graphic_id(i, part) for i in range(5) for part in (0, 1)} <= set(written)
    tiles = [np.asarray(Image.open(tmp_path / layout.NEAR_DIR / f"{layout.graphic_id(0, part)}.jpg"))
             for part in (0, 1)]
    assert tiles[0].shape == tiles[1].shape and np.abs(tiles[0].astype(int) - tiles[1]).mean() > 5


def test_calibration_needs_two_references(references, tmp_path):
    with pytest.raises(ValueError, match="merge.mode: sum"):
        calibration.make_calibration(sorted(references.glob("*.jpg"))[:1], tmp_path, 5, progress=False)


def test_sum_mode_adds_every_view_and_breaks_ties_by_global_similarity():
    pairs = pd.DataFrame({
        "verify_local_score": [10.0, np.nan, 10.0],
        "verify_local_crop_score": [5.0, 7.0, 5.0],
        "global_similarity": [np.nan, 0.5, 0.25],
    })
    assert scoring.sum_score(pairs).tolist() == pytest.approx([15.0, 7.0 + 0.4995, 15.0 + 0.24975])


def test_the_best_views_inliers_enter_as_octave_indicators_too():
    pairs = pd.DataFrame({"query_id": ["Q0", "Q1", "Q2"], "verify_local_n_inliers": [3.0, 40.0, np.nan],
                          "verify_local_crop_n_inliers": [9.0, 0.0, 70.0]})
    names, x = scoring.design_matrix(pairs)
    octaves = x[:, [names.index(f"inliers_best_ge_{k}") for k in scoring.INLIER_OCTAVES]]
    assert octaves.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_margins_say_how_far_a_candidate_stands_above_its_querys_others():
    pairs = pd.DataFrame({"query_id": ["flat", "flat", "flat", "copy", "copy", "alone"],
                          "global_similarity": [0.80, 0.82, 0.81, 0.90, 0.40, 0.70]})
    names, x = scoring.design_matrix(pairs)
    margin = x[:, names.index("global_similarity_margin")]
    # the flat query's three look-alikes barely differ; the copy stands 0.5 above its other candidate
    assert margin == pytest.approx([-0.02, 0.01, -0.01, 0.5, -0.5, 0.7])
    assert {f"{name}_margin" for name in scoring.MARGIN_FEATURES} <= set(names)


def test_the_nearest_of_a_querys_unreliable_hashes_still_stands_out():
    # a smooth picture's hashes (quality 2) are far from everything, yet the copy's is the nearest
    pairs = pd.DataFrame({"query_id": ["smooth"] * 3, "pdq_hamming": [74.0, 90.0, np.nan],
                          "pdq_quality": [2.0, 2.0, np.nan]})
    names, x = scoring.design_matrix(pairs)
    weighted, unweighted = (x[:, names.index(f"{name}_margin")] for name in ("pdq_closeness", "pdq_nearness"))
    assert np.abs(weighted).max() < 0.02  # a 25th of the unweighted margins
    assert unweighted == pytest.approx([16 / 128, -16 / 128, -(1 - 74 / 128)])


def test_hash_features_say_how_close_trustworthy_hashes_are_only_where_the_branch_proposed_the_pair():
    pairs = pd.DataFrame({"query_id": [f"Q{i}" for i in range(5)], "pdq_hamming": [0.0, 20.0, 64.0, np.nan, 0.0],
                          "pdq_quality": [100.0, 50.0, 100.0, np.nan, 10.0]})
    names, x = scoring.design_matrix(pairs)

    def column(name: str) -> list[float]:
        return x[:, names.index(name)].tolist()

    assert column("proposed_pdq") == [1, 1, 1, 0, 1]
    # a near-blank image's hash (quality 10) matches any other near-blank one: it counts a fifth
    assert column("pdq_closeness") == pytest.approx([1.0, 1 - 20 / 128, 0.5, 0.0, 0.2])
    assert column("pdq_match") == pytest.approx([1, 1, 0, 0, 0.2])
    assert column("pdq_quality") == pytest.approx([1.0, 0.5, 1.0, 0.0, 0.1])


def test_fitted_model_ranks_copies_first_and_scores_are_probabilities(calibrated_run):
    model = json.loads((calibrated_run / "model.json").read_text())
    assert model["n_positive"] >= 25 and model["n_negative"] > model["n_positive"]
    backdrops = pd.read_csv(calibrated_run / "cal" / "overlaps.csv", dtype=str)
    candidates = pd.read_parquet(calibrated_run / "sum.parquet")
    left_out = isc.is_positive(candidates, backdrops).sum()
    assert left_out > 0  # backdrops are found, and are neither positives nor negatives of the fit
    assert model["n_positive"] + model["n_negative"] == len(candidates) - left_out
    assert model["features"] == scoring.design_matrix(pd.DataFrame())[0]
    assert model["calibration_metrics"]["calibrated"]["micro_ap"] >= 0.85

    calibrated = pd.read_parquet(calibrated_run / "calibrated.parquet")
    assert calibrated.score.between(0, 1).all()
    truth = isc.read_ground_truth(calibrated_run / "cal" / "ground_truth.csv")
    labels = isc.is_positive(calibrated, truth)
    assert calibrated.score[labels].median() > 0.5 > calibrated.score[~labels].quantile(0.9)
    # The file's score is the model's probability of the parquet's features.
    fitted = scoring.load_model(calibrated_run / "model.json")
    assert fitted.probability(calibrated) == pytest.approx(calibrated.score.to_numpy())


def test_sum_mode_reproduces_the_summed_counts(calibrated_run):
    pairs = pd.read_parquet(calibrated_run / "sum.parquet")
    assert pairs.score.to_numpy() == pytest.approx(pairs.score_sum.to_numpy())
    assert pairs.score.to_numpy() == pytest.approx(pairs.verify_local_score.to_numpy())  # one view, no global
    csv = isc.read_isc_csv(calibrated_run / "sum.csv")
    assert csv.groupby("query_id").size().max() <= 10 and csv.score.is_monotonic_decreasing


def test_calibrated_mode_needs_a_matching_model(calibrated_run, tmp_path):
    candidates = {"local": tables.read_tables([calibrated_run / "candidates.parquet"], tables.PAIRS)}
    scores = tables.read_tables([calibrated_run / "scores.parquet"], tables.SCORES)
    with pytest.raises(ValueError, match="fitted model"):
        output.assemble_matches(candidates, scores, "calibrated")
    stale = json.loads((calibrated_run / "model.json").read_text())
    stale["features"] = stale["features"][:-1]
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="refit"):
        output.assemble_matches(candidates, scores, "calibrated", scoring.load_model(tmp_path / "stale.json"))


def test_fit_refuses_labels_without_positives(calibrated_run):
    candidates = {"local": tables.read_tables([calibrated_run / "candidates.parquet"], tables.PAIRS)}
    pairs = output.pair_features(candidates, tables.read_tables([calibrated_run / "scores.parquet"], tables.SCORES))
    with pytest.raises(ValueError, match="merge.mode: sum"):
        scoring.fit_calibrated(pairs, np.zeros(len(pairs), bool))


def test_a_querys_pairs_scored_alone_get_the_logits_they_get_in_a_batch():
    rng = np.random.default_rng(0)
    n = 600
    pairs = pd.DataFrame({
        "query_id": rng.integers(0, 150, n).astype(str),
        "global_similarity": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        "local_votes": rng.integers(0, 60, n).astype(float),
        "verify_local_n_inliers": rng.integers(0, 100, n).astype(float),
        "verify_local_n_matches": rng.integers(0, 200, n).astype(float),
        "verify_local_crop_n_inliers": rng.integers(0, 100, n).astype(float),
        "pdq_hamming": rng.integers(0, 128, n).astype(float),
        "pdq_quality": rng.integers(0, 101, n).astype(float),
    })
    names, x = scoring.design_matrix(pairs)
    model = scoring.CalibratedMerge(names, x.mean(axis=0).tolist(), (x.std(axis=0) + 1.0).tolist(),
                                    rng.normal(size=len(names)).tolist(), 0.3, 1, 1)
    batch = model.logit(pairs)
    for query in pairs.query_id.unique():
        rows = (pairs.query_id == query).to_numpy()
        assert np.array_equal(model.logit(pairs[rows].reset_index(drop=True)), batch[rows]), query
