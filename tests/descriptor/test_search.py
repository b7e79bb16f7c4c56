"""The jobs that only whiten, search, gather or export descriptors: right answers, and no torch or timm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from d2lv.descriptor import search, store, whitening
from d2lv.io import tables

#: Runs the subcommands in a fresh interpreter, then prints which heavy modules they imported.
LIGHT_JOBS = """
import json, sys
from d2lv.cli import main
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
print(json.dumps(sorted(name for name in ("torch", "timm", "torchvision") if name in sys.modules)))
"""


def unit_vectors(n: int, rng: np.random.Generator, dim: int = 32) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    """Query, reference (two shards) and background descriptor files; query i is a noisy copy of reference i."""
    folder = tmp_path_factory.mktemp("descriptors")
    rng = np.random.default_rng(0)
    references = unit_vectors(60, rng)
    queries = references[:12] + 0.05 * unit_vectors(12, rng)
    paths = {name: folder / f"{name}.h5" for name in ("queries", "references0", "references1", "background")}
    store.write_descriptor_shard(paths["queries"], "query", [f"q{i}" for i in range(12)], queries,
                                 {"backbone": "test"})
    store.write_descriptor_shard(paths["references0"], "reference", [f"r{i}" for i in range(30)], references[:30])
    store.write_descriptor_shard(paths["references1"], "reference", [f"r{i}" for i in range(30, 60)],
                                 references[30:])
    store.write_descriptor_shard(paths["background"], "reference", [f"b{i}" for i in range(20)],
                                 unit_vectors(20, rng))
    return paths


def test_search_whitening_and_export_run_without_torch(shards, tmp_path):
    q, r0, r1, bg = (str(shards[name]) for name in ("queries", "references0", "references1", "background"))
    out = {name: str(tmp_path / name) for name in ("w.h5", "p0.parquet", "p1.parquet", "c.parquet", "isc.h5")}
    jobs = [
        ["descriptor-whitening", "--quiet", r0, r1, "-o", out["w.h5"], "--dim", "16", "--shrinkage", "0.1"],
        ["descriptor-search", "--quiet", "--queries", q, "--references", r0, "--whitening", out["w.h5"],
         "--background", bg, "--background-k", "2", "--background-beta", "0.5", "-o", out["p0.parquet"],
         "--topk", "5"],
        ["descriptor-search", "--quiet", "--queries", q, "--references", r1, "-o", out["p1.parquet"], "--topk", "5"],
        ["descriptor-search", "--quiet", "--queries", q, "--references", r0, r1, "-o", out["c.parquet"], "--topk", "3"],
        ["descriptor-export", "--quiet", "--queries", q, "--references", r0, r1, "--whitening", out["w.h5"],
         "-o", out["isc.h5"]],
    ]
    done = subprocess.run([sys.executable, "-c", LIGHT_JOBS, json.dumps(jobs)], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == [], "a light job imported torch or timm"

    # the same answers as the library calls
    query_ids, queries = store.read_descriptors(q, "query")
    reference_ids, references = store.read_descriptors([r0, r1], "reference")
    fitted = whitening.read_whitening(out["w.h5"])
    np.testing.assert_allclose(fitted.projection, whitening.fit_whitening(references, 16, 0.1).projection,
                               rtol=1e-5, atol=1e-6)
    pairs = tables.read_tables([out["p1.parquet"]], tables.SIMILARITY_PAIRS)
    expected = search.search(query_ids, queries, reference_ids[30:], references[30:], 5, progress=False)
    np.testing.assert_array_equal(pairs.reference_id, expected.reference_id)
    candidates = tables.read_tables([out["c.parquet"]], tables.SIMILARITY_PAIRS)
    assert candidates.groupby("query_id").size().eq(3).all()
    best = candidates[candidates["rank"] == 1]
    assert (best.query_id.str.removeprefix("q") == best.reference_id.str.removeprefix("r")).all()
    with h5py.File(out["isc.h5"], "r") as h5:
        assert h5["query"].shape == (12, 16) and h5["reference"].shape == (60, 16)
        assert h5.attrs["backbone"] == "test"


def test_shards_whitened_once_give_the_search_and_export_of_whitening_on_the_fly(shards, tmp_path):
    """What the workflow does (descriptor-whiten per shard, gather the references' in one file, search it)
    equals whitening every raw descriptor inside the search, as it was done before."""
    q, r0, r1 = (str(shards[name]) for name in ("queries", "references0", "references1"))
    w = str(tmp_path / "w.h5")
    whitened = {path: str(tmp_path / f"whitened-{Path(path).name}") for path in (q, r0, r1)}
    jobs = [["descriptor-whitening", "--quiet", r0, r1, "-o", w, "--dim", "16"]]
    jobs += [["descriptor-whiten", "--quiet", raw, "--whitening", w, "-o", out] for raw, out in whitened.items()]
    jobs += [
        ["descriptor-search", "--quiet", "--queries", q, "--references", r0, r1, "--whitening", w, "-o",
         str(tmp_path / "on_the_fly.parquet")],
        ["descriptor-gather", "--quiet", whitened[r0], whitened[r1], "-o", str(tmp_path / "gathered.h5")],
        ["descriptor-search", "--quiet", "--queries", whitened[q], "--references", str(tmp_path / "gathered.h5"),
         "-o", str(tmp_path / "once.parquet")],
        ["descriptor-export", "--quiet", "--queries", whitened[q], "--references", whitened[r0], whitened[r1],
         "-o", str(tmp_path / "isc.h5")],
    ]
    done = subprocess.run([sys.executable, "-c", LIGHT_JOBS, json.dumps(jobs)], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []
    on_the_fly, once = (tables.read_tables([str(tmp_path / f"{name}.parquet")], tables.SIMILARITY_PAIRS)
                        for name in ("on_the_fly", "once"))
    np.testing.assert_array_equal(once.reference_id, on_the_fly.reference_id)
    np.testing.assert_allclose(once.similarity, on_the_fly.similarity, atol=1e-6)
    assert store.read_attrs(whitened[q])["backbone"] == "test"
    _, raw_references = store.read_descriptors([r0, r1], "reference")
    with h5py.File(tmp_path / "isc.h5", "r") as h5:
        np.testing.assert_allclose(h5["reference"][:], whitening.read_whitening(w).apply(raw_references), atol=1e-6)


@pytest.fixture(scope="module")
def random_set() -> dict[str, np.ndarray]:
    """600 queries, 2,000 references: random 256-d unit vectors."""
    rng = np.random.default_rng(1)
    return {"queries": unit_vectors(600, rng, 256), "references": unit_vectors(2000, rng, 256)}


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def test_search_finds_the_exact_topk(random_set):
    queries, references = random_set["queries"], random_set["references"]
    pairs = search.search(ids("q", 600), queries, ids("r", 2000), references, topk=5, progress=False)
    assert list(pairs.columns) == tables.SIMILARITY_PAIRS.names and pairs.similarity.dtype == np.float32
    similarity = queries.astype(np.float64) @ references.T.astype(np.float64)
    best = np.argsort(-similarity, axis=1, kind="stable")[:, :5]
    pairs = pairs.sort_values(["query_id", "rank"])
    np.testing.assert_array_equal(pairs.reference_id.to_numpy().reshape(600, 5), np.asarray(ids("r", 2000))[best])
    np.testing.assert_allclose(pairs.similarity.to_numpy().reshape(600, 5),
                               np.take_along_axis(similarity, best, axis=1), atol=1e-6)
    assert (pairs["rank"].to_numpy().reshape(600, 5) == np.arange(1, 6)).all()


def test_a_query_searched_alone_gets_the_pairs_and_bits_it_gets_in_a_batch(random_set):
    queries, references = random_set["queries"], random_set["references"]
    query_ids, reference_ids = ids("q", 600), ids("r", 2000)
    batch = search.search(query_ids, queries, reference_ids, references, topk=5, progress=False)
    by_query = dict(iter(batch.groupby("query_id")))
    for i, query_id in enumerate(query_ids):
        alone = search.search([query_id], queries[i:i + 1], reference_ids, references, topk=5, progress=False)
        pd.testing.assert_frame_equal(alone, by_query[query_id].reset_index(drop=True), check_exact=True)


def test_a_querys_background_similarity_alone_has_the_bits_of_the_batch(random_set):
    queries, background = random_set["queries"], random_set["references"]
    batch = search.kth_background_similarity(queries, background, k=3)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, np.sort(queries @ background.T, axis=1)[:, -3], atol=1e-6)
    for i in range(len(queries)):
        assert np.array_equal(search.kth_background_similarity(queries[i:i + 1], background, k=3), batch[i:i + 1])
