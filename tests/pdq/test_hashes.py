"""PDQ hashes: copies are near in Hamming space, unrelated photos far; files round-trip; ThreatExchange export."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pdqhash
import pytest
from PIL import Image
from skimage import data

from d2lv import cli
from d2lv.io import tables
from d2lv.pdq import hashes as pdq
from d2lv.pdq.params import MATCH_DISTANCE


def jpeg(rgb: np.ndarray, quality: int = 40) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def photos(astronaut, chelsea, coffee) -> dict[str, np.ndarray]:
    return {"astronaut": astronaut, "chelsea": chelsea, "coffee": coffee, "rocket": data.rocket(),
            "motorcycle": data.stereo_motorcycle()[0]}


@pytest.fixture(scope="module")
def references(photos) -> pdq.PdqHashes:
    return pdq.hash_images(list(photos), list(photos.values()), progress=False)


@pytest.fixture(scope="module")
def copies(chelsea) -> dict[str, np.ndarray]:
    return {"chelsea_jpeg": jpeg(chelsea), "chelsea_rot90": np.rot90(jpeg(chelsea, 75)),
            "chelsea_mirror": chelsea[:, ::-1]}


@pytest.fixture(scope="module")
def queries(copies) -> pdq.PdqHashes:
    return pdq.hash_images(list(copies), list(copies.values()), dihedral=True, progress=False)


def test_hash_shapes_and_quality(references, queries):
    assert references.hashes.shape == (5, 1, 32) and references.hashes.dtype == np.uint8
    assert queries.hashes.shape == (3, 8, 32)
    assert references.quality.dtype == np.int32 and (references.quality >= 50).all()  # textured photos


def test_dihedral_first_variant_is_the_plain_hash(chelsea):
    plain, quality = pdq.hash_image(chelsea)
    variants, dihedral_quality = pdq.hash_image_dihedral(chelsea)
    assert variants.shape == (8, 32)
    np.testing.assert_array_equal(variants[0], plain)
    assert quality == dihedral_quality


def test_copies_found_unrelated_far(references, queries):
    pairs = pdq.match(queries, references, topk=5, progress=False)
    best = pairs[pairs["rank"] == 1].set_index("query_id")
    assert (best.reference_id == "chelsea").all(), best
    assert (best.hamming <= MATCH_DISTANCE).all(), best
    others = pairs[pairs.reference_id != "chelsea"]
    assert (others.hamming >= 90).all(), others  # unrelated photos: ~128 expected


def test_unrelated_photos_far_apart(references):
    codes = references.hashes[:, 0]
    distances = pdq.hamming(codes[:, None], codes[None, :])
    off_diagonal = distances[~np.eye(len(codes), dtype=bool)]
    assert off_diagonal.min() >= 90
    assert (np.diag(distances) == 0).all()


def test_mirror_needs_the_dihedral_variants(chelsea, references, copies):
    single = pdq.hash_images(["m"], [copies["chelsea_mirror"]], dihedral=False, progress=False)
    pairs = pdq.match(single, references, topk=5, progress=False)
    assert pairs.set_index("reference_id").loc["chelsea", "hamming"] > 90


def test_pairs_schema_scores_and_ranks(references, queries, tmp_path):
    pairs = pdq.match(queries, references, topk=2, progress=False)
    assert list(pairs.columns) == tables.PDQ_PAIRS.names
    assert pairs.groupby("query_id").size().eq(2).all()
    assert sorted(pairs["rank"].unique()) == [1, 2]
    np.testing.assert_allclose(pairs.score, 1 - pairs.hamming / 256, rtol=1e-6)
    for _, group in pairs.groupby("query_id"):
        assert group.sort_values("rank").hamming.is_monotonic_increasing
    tables.write_table(pairs, tmp_path / "pdq.parquet", tables.PDQ_PAIRS)
    back = tables.read_tables([tmp_path / "pdq.parquet"], tables.PDQ_PAIRS)
    pd.testing.assert_frame_equal(back, pairs, check_dtype=False)


def test_max_distance_drops_far_pairs(references, queries):
    pairs = pdq.match(queries, references, topk=5, max_distance=MATCH_DISTANCE, progress=False)
    assert set(pairs.reference_id) == {"chelsea"} and len(pairs) == 3


def test_sharded_match_gathers_to_the_same_result(references, queries):
    whole = pdq.match(queries, references, topk=3, progress=False)
    first = references.subset(np.arange(len(references)) < 2)
    second = references.subset(np.arange(len(references)) >= 2)
    parts = [pdq.match(queries, shard, topk=3, progress=False) for shard in (first, second)]
    gathered = pdq.rank_pairs(pd.concat(parts, ignore_index=True), topk=3)
    pd.testing.assert_frame_equal(gathered, whole)


def test_hdf5_round_trip(references, queries, tmp_path):
    pdq.write_hashes(tmp_path / "r0.h5", references.subset(np.arange(5) < 3), {"set": "reference"})
    pdq.write_hashes(tmp_path / "r1.h5", references.subset(np.arange(5) >= 3))
    pdq.write_hashes(tmp_path / "q.h5", queries)
    back = pdq.read_hashes([tmp_path / "r0.h5", tmp_path / "r1.h5"])
    assert back.ids == references.ids
    np.testing.assert_array_equal(back.hashes, references.hashes)
    np.testing.assert_array_equal(back.quality, references.quality)
    q = pdq.read_hashes(tmp_path / "q.h5")
    assert q.variants == 8 and q.ids == queries.ids
    np.testing.assert_array_equal(q.hashes, queries.hashes)
    with pytest.raises(ValueError, match="variants"):
        pdq.read_hashes([tmp_path / "r0.h5", tmp_path / "q.h5"])
    assert len(pdq.read_hashes([])) == 0
    assert cli.main(["pdq-gather", "--quiet", str(tmp_path / "r0.h5"), str(tmp_path / "r1.h5"), "-o",
                     str(tmp_path / "gathered.h5")]) == 0
    gathered = pdq.read_hashes(tmp_path / "gathered.h5")
    assert gathered.ids == references.ids
    np.testing.assert_array_equal(gathered.hashes, references.hashes)


def test_hash_from_file_matches_array(chelsea, tmp_path):
    path = tmp_path / "chelsea.png"
    Image.fromarray(chelsea).save(path)
    from_file = pdq.hash_images(["chelsea"], [path], progress=False)
    from_array = pdq.hash_images(["chelsea"], [chelsea], progress=False)
    np.testing.assert_array_equal(from_file.hashes, from_array.hashes)


def test_low_quality_images_can_be_excluded(references, queries):
    flat = np.full((64, 64, 3), 128, np.uint8)  # no texture: PDQ quality 0
    with_flat = pdq.hash_images(["flat"], [flat], progress=False)
    assert with_flat.quality[0] < 50
    pool = pdq.PdqHashes(references.ids + ["flat"], np.concatenate([references.hashes, with_flat.hashes]),
                         np.concatenate([references.quality, with_flat.quality]))
    assert "flat" in set(pdq.match(queries, pool, topk=6, progress=False).reference_id)
    assert "flat" not in set(pdq.match(queries, pool, topk=6, min_quality=50, progress=False).reference_id)


def test_empty_inputs_give_empty_pairs(references):
    none = pdq.PdqHashes([], np.zeros((0, 8, 32), np.uint8), np.zeros(0, np.int32))
    pairs = pdq.match(none, references, progress=False)
    assert pairs.empty and list(pairs.columns) == tables.PDQ_PAIRS.names


def test_a_pairs_quality_is_its_flatter_images(references, queries):
    pairs = pdq.match(queries, references, topk=5, progress=False)
    quality = dict(zip(references.ids, references.quality)) | dict(zip(queries.ids, queries.quality))
    expected = [min(quality[q], quality[r]) for q, r in zip(pairs.query_id, pairs.reference_id)]
    assert pairs.quality.tolist() == expected


def test_threatexchange_export_writes_its_hex_convention(references, photos, tmp_path):
    out = tmp_path / "hashes.csv"
    pdq.write_threatexchange(out, references)
    lines = out.read_text().splitlines()
    assert [line.split(",")[2] for line in lines] == references.ids
    bits, quality = pdqhash.compute(np.ascontiguousarray(photos["chelsea"]))
    # ThreatExchange's python hasher: the 256 bits as one binary number, 64 lower-case hex digits
    expected = "%0*x" % (64, int("".join(str(int(b)) for b in bits), 2))
    assert lines[references.ids.index("chelsea")] == f"{expected},{quality},chelsea"


def test_search_keeps_each_querys_closest_view(references, queries, tmp_path):
    """pdq-search: a query and its crop (``<id>/2``) both propose references; each pair keeps the closer view."""
    crop = queries.subset(np.array([q == "chelsea_rot90" for q in queries.ids]))
    crop.ids = ["chelsea_jpeg/2"]
    for name, hashes in {"queries": queries, "crops": crop, "references": references}.items():
        pdq.write_hashes(tmp_path / f"{name}.h5", hashes)
    out = tmp_path / "candidates.parquet"
    assert cli.main(["pdq-search", "--queries", str(tmp_path / "queries.h5"), str(tmp_path / "crops.h5"),
                     "--references", str(tmp_path / "references.h5"), "-o", str(out), "--topk", "2", "--quiet"]) == 0
    found = tables.read_tables([out], tables.PDQ_PAIRS)
    assert set(found.query_id) == set(queries.ids), "a crop's candidates belong to its query"
    chelsea = references.hashes[references.ids.index("chelsea"), 0]
    by_view = [pdq.hamming(view.hashes[0], chelsea).min() for view in (queries.subset(
        np.array([q == "chelsea_jpeg" for q in queries.ids])), crop)]
    pair = found[(found.query_id == "chelsea_jpeg") & (found.reference_id == "chelsea")]
    assert pair.hamming.tolist() == [min(by_view)]
