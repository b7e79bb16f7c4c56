"""The figures for `snakemake --report`, drawn from real photos, and the correspondences behind them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from d2lv import cli
from d2lv.evaluation import metrics
from d2lv.io import isc, tables
from d2lv.local import sift, store, verify
from d2lv.local.params import GEOMETRIES, SiftParams, VerifyParams
from d2lv.report import figures as report
from d2lv.synth import families

GROUND_TRUTH = {"q_crop": "astronaut", "q_mirror": "coffee", "q_paste": "chelsea", "q_other": ""}
#: query, reference, score, local inliers/matches, local_crop inliers/matches (None: view absent)
MATCHES = [
    ("q_crop", "astronaut", 150.0, (150, 170), None),
    ("q_mirror", "coffee", 120.0, (120, 140), None),
    ("q_paste", "chelsea", 60.0, (10, 30), (50, 60)),
    ("q_other", "rocket", 12.0, (12, 40), None),
    ("q_crop", "chelsea", 5.0, (5, 30), None),
    ("q_mirror", "rocket", 3.0, (3, 25), None),
]


def _save(folder: Path, name: str, rgb: np.ndarray | Image.Image) -> Path:
    path = folder / f"{name}.png"  # lossless, so the drawn pictures are exactly these pixels
    (rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)).save(path)
    return path


def _manifest(paths: dict[str, Path], out: Path) -> Path:
    rows = []
    for image_id, path in paths.items():
        width, height = Image.open(path).size
        rows.append((image_id, str(path), width, height, path.stat().st_size, "ok", ""))
    tables.write_table(pd.DataFrame(rows, columns=tables.MANIFEST.names), out, tables.MANIFEST)
    return out


def _matches_frame() -> pd.DataFrame:
    rows = []
    for query_id, reference_id, score, local, crop in MATCHES:
        rows.append({"query_id": query_id, "reference_id": reference_id, "score": score,
                     "verify_local_n_inliers": local[0], "verify_local_n_matches": local[1],
                     "verify_local_flipped": query_id == "q_mirror",
                     "verify_local_crop_n_inliers": crop[0] if crop else None,
                     "verify_local_crop_n_matches": crop[1] if crop else None,
                     "verify_local_crop_flipped": False if crop else None})
    return pd.DataFrame(rows).astype({"verify_local_crop_n_inliers": "Int32", "verify_local_crop_n_matches": "Int32",
                                      "verify_local_crop_flipped": "boolean"})


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory, astronaut, chelsea, coffee) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("report_inputs")
    references = {"astronaut": astronaut, "chelsea": chelsea, "coffee": coffee, "rocket": data.rocket()}
    pasted = families.apply_family("paste", Image.fromarray(chelsea), np.random.default_rng(0),
                                   backdrop=lambda: Image.fromarray(data.camera()).convert("RGB"))
    queries = {
        "q_crop": astronaut[40:420, 60:470],
        "q_mirror": np.ascontiguousarray(coffee[:, ::-1]),
        "q_paste": pasted.image,
        "q_other": data.stereo_motorcycle()[0],
    }
    ref_paths = {name: _save(folder, name, image) for name, image in references.items()}
    query_paths = {name: _save(folder, name, image) for name, image in queries.items()}
    decoy = (0, 300, 200, 500)  # the detector's first box, on the backdrop below the paste; the paste is its second
    boxes = pd.DataFrame([("q_paste", True, 1, *decoy, 0.9), ("q_paste", True, 2, *pasted.box, 0.5),
                          ("q_crop", False, None, None, None, None, None, None)], columns=tables.BOXES.names)
    tables.write_table(boxes, folder / "boxes.parquet", tables.BOXES)
    _matches_frame().to_parquet(folder / "matches.parquet", index=False)
    pd.DataFrame(GROUND_TRUTH.items(), columns=["query_id", "reference_id"]).to_csv(folder / "gt.csv", index=False)
    pd.DataFrame({"query_id": list(GROUND_TRUTH), "kind": ["copy", "copy", "copy", "noncopy"],
                  "recipe": ["crop", "geometry", "paste", "mild"]}).to_csv(folder / "categories.csv", index=False)
    return {"folder": folder, "box": pasted.box, "query_paths": query_paths, "ref_paths": ref_paths,
            "queries_manifest": _manifest(query_paths, folder / "queries.parquet"),
            "references_manifest": _manifest(ref_paths, folder / "references.parquet")}


def _run(run_inputs: dict, out: Path, *extra: str) -> Path:
    folder = run_inputs["folder"]
    argv = ["report-figures", "--quiet", "--matches", str(folder / "matches.parquet"),
            "--queries-manifests", str(run_inputs["queries_manifest"]),
            "--references-manifests", str(run_inputs["references_manifest"]), "-o", str(out), *extra]
    assert cli.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def with_truth(run_inputs, tmp_path_factory) -> Path:
    folder = run_inputs["folder"]
    return _run(run_inputs, tmp_path_factory.mktemp("report_gt"), "--ground-truth", str(folder / "gt.csv"),
                "--categories", str(folder / "categories.csv"), "--boxes", str(folder / "boxes.parquet"),
                "--top", "4", "--near-threshold", "3")


@pytest.fixture(scope="module")
def without_truth(run_inputs, tmp_path_factory) -> Path:
    return _run(run_inputs, tmp_path_factory.mktemp("report_nogt"), "--top", "10", "--near-threshold", "2")


def _picture(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _expected_size(query: Path, reference: Path) -> tuple[int, int]:
    (qw, qh), (rw, rh) = Image.open(query).size, Image.open(reference).size
    width = round(qw * report.PANEL_HEIGHT / qh) + report.GAP + round(rw * report.PANEL_HEIGHT / rh)
    return max(width, report.MIN_WIDTH), report.PANEL_HEIGHT + report.CAPTION_HEIGHT


def _caption_colour(picture: np.ndarray) -> np.ndarray:
    return np.median(picture[report.PANEL_HEIGHT:].reshape(-1, 3), axis=0)


class TestWithGroundTruth:
    def test_figures_exist(self, with_truth):
        for name in ("metrics.csv", "pr_curve.png", "recall_per_family.png"):
            assert (with_truth / name).is_file()
        assert Image.open(with_truth / "pr_curve.png").size != report.PLACEHOLDER_SIZE
        assert Image.open(with_truth / "recall_per_family.png").size != report.PLACEHOLDER_SIZE

    def test_metrics_are_those_of_evaluate(self, with_truth, run_inputs):
        got = pd.read_csv(with_truth / "metrics.csv").iloc[0].to_dict()
        gt = isc.read_ground_truth(run_inputs["folder"] / "gt.csv")
        expected = metrics.evaluate(_matches_frame()[["query_id", "reference_id", "score"]], gt).to_dict()
        assert got == pytest.approx(expected)
        assert expected["threshold_at_p90"] == 60.0

    def test_top_and_near_threshold_pairs_are_drawn(self, with_truth):
        names = sorted(p.name for p in (with_truth / "pairs").iterdir())
        assert names == [
            "p90_01_q_paste_chelsea.jpg", "p90_02_q_other_rocket.jpg", "p90_03_q_crop_chelsea.jpg",
            "top_01_q_crop_astronaut.jpg", "top_02_q_mirror_coffee.jpg", "top_03_q_paste_chelsea.jpg",
            "top_04_q_other_rocket.jpg",
        ]

    def test_side_by_side_at_a_common_height(self, with_truth, run_inputs):
        for name in ("top_01_q_crop_astronaut.jpg", "p90_03_q_crop_chelsea.jpg"):
            query, reference = name.split("_")[2:4], name.split("_")[4].removesuffix(".jpg")
            expected = _expected_size(run_inputs["query_paths"]["_".join(query)], run_inputs["ref_paths"][reference])
            assert Image.open(with_truth / "pairs" / name).size == expected

    def test_correct_and_incorrect_follow_the_ground_truth(self, with_truth):
        correct, incorrect = np.array(report.VERDICT_COLOURS[True]), np.array(report.VERDICT_COLOURS[False])
        for name in ("top_01_q_crop_astronaut.jpg", "top_02_q_mirror_coffee.jpg", "p90_01_q_paste_chelsea.jpg"):
            assert np.abs(_caption_colour(_picture(with_truth / "pairs" / name)) - correct).max() <= 6, name
        for name in ("top_04_q_other_rocket.jpg", "p90_03_q_crop_chelsea.jpg"):
            assert np.abs(_caption_colour(_picture(with_truth / "pairs" / name)) - incorrect).max() <= 6, name

    def test_inliers_of_a_true_copy_are_drawn(self, with_truth):
        picture = _picture(with_truth / "pairs" / "top_01_q_crop_astronaut.jpg")[:report.PANEL_HEIGHT]
        green = (np.abs(picture - np.array(report.INLIER_COLOUR)).max(axis=2) < 60).sum()
        assert green > 2000

    def test_the_crop_with_the_most_inliers_is_outlined_on_the_query(self, with_truth, run_inputs):
        picture = _picture(with_truth / "pairs" / "p90_01_q_paste_chelsea.jpg")
        height = Image.open(run_inputs["query_paths"]["q_paste"]).size[1]
        x0, y0, x1, y1 = (round(v * report.PANEL_HEIGHT / height) for v in run_inputs["box"])
        edges = {"top": picture[y0, x0 + 4:x1 - 4], "bottom": picture[y1 - 1, x0 + 4:x1 - 4],
                 "left": picture[y0 + 4:y1 - 4, x0], "right": picture[y0 + 4:y1 - 4, x1 - 1]}
        for side, pixels in edges.items():
            boxed = (np.abs(pixels - np.array(report.BOX_COLOUR)).max(axis=1) < 70).mean()
            assert boxed > 0.8, side
        unboxed = _picture(with_truth / "pairs" / "top_01_q_crop_astronaut.jpg")
        assert (np.abs(unboxed - np.array(report.BOX_COLOUR)).max(axis=2) < 70).sum() < 50


class TestWithoutGroundTruth:
    def test_placeholders_and_counts(self, without_truth):
        for name in ("pr_curve.png", "recall_per_family.png"):
            assert Image.open(without_truth / name).size == report.PLACEHOLDER_SIZE
        counts = pd.read_csv(without_truth / "metrics.csv").iloc[0].to_dict()
        assert counts == {"n_queries": 4, "n_references": 4, "n_matched_pairs": 6, "n_matched_queries": 4}

    def test_every_pair_when_fewer_than_asked_and_neutral_captions(self, without_truth):
        pictures = sorted((without_truth / "pairs").iterdir())
        assert len([p for p in pictures if p.name.startswith("top_")]) == len(MATCHES)
        # around the median of the queries' best scores (150, 120, 60, 12): 120 and 60
        assert [p.name for p in pictures if p.name.startswith("median_")] == [
            "median_01_q_mirror_coffee.jpg", "median_02_q_paste_chelsea.jpg"]
        neutral = np.array(report.VERDICT_COLOURS[None])
        assert all(np.abs(_caption_colour(_picture(p)) - neutral).max() <= 6 for p in pictures)


def test_an_empty_pairs_folder_when_nothing_matched(run_inputs, tmp_path):
    empty = tmp_path / "matches.parquet"
    _matches_frame().head(0).to_parquet(empty, index=False)
    out = tmp_path / "out"
    argv = ["report-figures", "--quiet", "--matches", str(empty), "--queries-manifests",
            str(run_inputs["queries_manifest"]), "--references-manifests", str(run_inputs["references_manifest"]),
            "--ground-truth", str(run_inputs["folder"] / "gt.csv"), "-o", str(out)]
    assert cli.main(argv) == 0
    assert (out / "pairs").is_dir() and not any((out / "pairs").iterdir())
    assert Image.open(out / "recall_per_family.png").size == report.PLACEHOLDER_SIZE  # no categories given


def test_pairs_without_a_usable_image_are_skipped(run_inputs, tmp_path):
    matches = tmp_path / "matches.parquet"
    gone = pd.DataFrame({"query_id": ["q_gone"], "reference_id": ["astronaut"], "score": [500.0]})
    pd.concat([_matches_frame(), gone], ignore_index=True).to_parquet(matches, index=False)
    out = tmp_path / "out"
    argv = ["report-figures", "--quiet", "--matches", str(matches), "--queries-manifests",
            str(run_inputs["queries_manifest"]), "--references-manifests", str(run_inputs["references_manifest"]),
            "--top", "2", "--near-threshold", "0", "-o", str(out)]
    assert cli.main(argv) == 0
    assert [p.name for p in (out / "pairs").iterdir()] == ["top_02_q_crop_astronaut.jpg"]


def test_only_each_querys_best_pairs_with_max_results_per_query(run_inputs, tmp_path):
    out = _run(run_inputs, tmp_path, "--max-results-per-query", "1", "--top", "0", "--near-threshold", "0")
    assert pd.read_csv(out / "metrics.csv").n_matched_pairs.item() == len(GROUND_TRUTH)


def test_file_names_are_safe():
    assert report.pair_file_name("top", 3, "a b/../c", "ü:x") == "top_03_a-b-..-c_x.jpg"


def _features(image: np.ndarray) -> store.ImageFeatures:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    keypoints, descriptors = sift.extract(gray)
    return store.ImageFeatures("", gray.shape[1], gray.shape[0], keypoints, descriptors)


class TestMatchPair:
    def test_crop_points_map_by_the_crop_offset(self, astronaut):
        reference, query = _features(astronaut), _features(astronaut[50:400, 30:300])
        found = verify.match_pair(query, reference, VerifyParams())
        assert found.n_inliers >= 40 and not found.flipped
        offset = found.reference_points[found.inliers] - found.query_points[found.inliers]
        error = np.linalg.norm(offset - np.array([30, 50]), axis=1)
        assert np.median(error) < 1.5 and error.max() < 8

    def test_mirrored_copy_is_flipped_with_unmirrored_reference_points(self, coffee):
        reference, query = _features(coffee), _features(np.ascontiguousarray(coffee[:, ::-1]))
        found = verify.match_pair(query, reference, VerifyParams())
        assert found.flipped and found.n_inliers >= 40
        q, r = found.query_points[found.inliers], found.reference_points[found.inliers]
        error = np.hypot(r[:, 0] - (coffee.shape[1] - 1 - q[:, 0]), r[:, 1] - q[:, 1])
        assert np.median(error) < 1.5 and error.max() < 8

    def test_verify_pair_counts_what_match_pair_finds(self, chelsea, coffee):
        reference, query = _features(chelsea), _features(np.ascontiguousarray(chelsea[20:280, 40:400]))
        for geometry in GEOMETRIES:
            params = VerifyParams(geometry=geometry)
            found, score = verify.match_pair(query, reference, params), verify.verify_pair(query, reference, params)
            assert (score.n_matches, score.n_inliers, score.flipped) == (found.n_matches, found.n_inliers,
                                                                         found.flipped)
        unrelated = verify.match_pair(_features(coffee), reference, VerifyParams())
        assert unrelated.n_inliers <= 8 and len(unrelated.query_points) == len(unrelated.reference_points)

    def test_crop_view_points_are_in_full_query_pixels(self, chelsea):
        query = np.full((500, 700, 3), 255, np.uint8)
        query[100:400, 150:601] = chelsea
        found = report.correspondences(query, chelsea, (150, 100, 601, 400), SiftParams(),
                                       VerifyParams())
        assert found.n_inliers >= 40
        offset = found.query_points[found.inliers] - found.reference_points[found.inliers]
        assert np.median(np.linalg.norm(offset - np.array([150, 100]), axis=1)) < 1.5
