"""The jobs that only whiten, search, gather or export descriptors: right answers, and no torch or timm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
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
