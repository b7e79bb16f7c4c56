"""The fan-out local index: train once, add per shard, merge on disk, search the whole collection."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from d2lv import device
from d2lv.errors import D2lvError
from d2lv.local import index, recall, store
from d2lv.local.params import RecallParams


@pytest.fixture(scope="module")
def merged(reference_store, tmp_path_factory):
    """The four references cut into two shards, trained, added and merged."""
    folder = tmp_path_factory.mktemp("index")
    shards = _split(reference_store, folder)
    sample = index.training_sample([s for _, s in shards], 50_000, seed=0)
    trained = index.train_index(sample, "IVF4,Flat", len(sample))
    paths = []
    for shard, shard_store in shards:
        path = folder / f"{shard}.faiss"
        faiss.write_index(index.add_shard(trained, shard_store, shard), str(path))
        paths.append(path)
    out = folder / "merged.faiss"
    index.merge_shards(trained, paths, out)
    return out, index.catalogue(shards)


def _split(reference_store: store.FeatureStore, folder) -> list[tuple[int, store.FeatureStore]]:
    shards = []
    for shard, ids in [(0, ["astronaut", "chelsea"]), (5, ["coffee", "rocket"])]:
        path = folder / f"features-{shard}.h5"
        store.write_store(path, [reference_store.get(i) for i in ids], reference_store.attrs)
        shards.append((shard, store.FeatureStore(path)))
    return shards


def test_reference_numbers_put_the_shard_in_the_high_bits():
    numbers = index.reference_numbers(5, 3)
    assert (numbers >> index.ROW_BITS).tolist() == [5, 5, 5]
    assert (numbers & (2**index.ROW_BITS - 1)).tolist() == [0, 1, 2]


def test_a_shard_added_in_batches_is_the_same_index(reference_store, monkeypatch):
    sample = index.training_sample([reference_store], 50_000, seed=0)
    trained = index.train_index(sample, "IVF4,Flat", len(sample))
    whole = faiss.serialize_index(index.add_shard(trained, reference_store, 3))
    monkeypatch.setattr(index, "ADD_BATCH", 100)
    assert len(reference_store.descriptors) > 100
    assert np.array_equal(faiss.serialize_index(index.add_shard(trained, reference_store, 3)), whole)


def test_merged_index_holds_every_descriptor_in_lists_beside_it(merged, reference_store):
    path, catalogue = merged
    loaded = index.read_index(path)
    assert loaded.ntotal == len(reference_store.descriptors)
    assert index.ivfdata_path(path).stat().st_size > 0
    assert index.index_bytes(path) > path.stat().st_size
    assert catalogue.reference_id.tolist() == ["astronaut", "chelsea", "coffee", "rocket"]
    assert not list(path.parent.glob(".merged*")), "no scratch files are left behind"


def test_merged_index_is_found_after_the_results_folder_moves(merged, tmp_path):
    path, _ = merged
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for source in (path, index.ivfdata_path(path)):
        (moved / source.name).write_bytes(source.read_bytes())
    assert index.read_index(moved / path.name).ntotal == index.read_index(path).ntotal


def test_search_over_the_merged_index_finds_each_copy_first(merged, query_store):
    path, catalogue = merged
    pairs = recall.search_index(index.read_index(path), catalogue, query_store, RecallParams(), keep=3,
                                progress=False)
    best = pairs[pairs["rank"] == 1].set_index("query_id").reference_id
    assert best["q_astronaut"] == "astronaut"
    assert pairs.groupby("query_id").size().max() <= 3


def test_auto_factory_keeps_lists_the_same_length_as_the_collection_grows():
    for n_descriptors in (500_000, 2_500_000, 10_000_000, 40_000_000):
        factory = index.auto_factory(n_descriptors, 100_000_000)
        nlist = int(factory.split(",")[0].removeprefix("IVF").split("_")[0])
        assert 181 <= n_descriptors / nlist <= 362, factory  # 256 within a power of two's rounding
    assert index.auto_factory(500_000, 1_000_000) == "IVF2048,PQ16"
    assert index.auto_factory(10_000_000, 1_000_000) == "IVF32768_HNSW32,PQ16"  # many lists: HNSW finds them


def test_auto_factory_chooses_no_more_lists_than_its_sample_trains():
    assert index.auto_factory(600_000_000, 1_000_000) == "IVF32768_HNSW32,PQ16"
    assert index.auto_factory(600_000_000, 4_000_000) == "IVF131072_HNSW32,PQ16"
    assert index.auto_factory(5_000, 5_000) == "IVF16,Flat"  # too small a sample for a product quantiser
    assert index.auto_factory(10, 10) == "IVF1,Flat"


def test_an_hnsw_quantiser_is_trained_by_two_level_kmeans_and_finds_each_point(capsys):
    rng = np.random.default_rng(0)
    sample = rng.random((64 * 40, 128), dtype=np.float32)
    trained = index.train_index(sample, "IVF64_HNSW32,Flat", len(sample))
    assert faiss.extract_index_ivf(trained).quantizer.ntotal == 64
    trained.add(sample)
    recall.set_nprobe(trained, 8)
    _, nearest = trained.search(sample[:200], 1)
    assert (nearest[:, 0] == np.arange(200)).mean() > 0.95
    assert capsys.readouterr().out == "", "training prints nothing on stdout"


def test_a_factory_that_cannot_merge_on_disk_is_a_clear_error():
    sample = np.random.default_rng(0).random((2000, 128), dtype=np.float32)
    with pytest.raises(D2lvError, match="IVF"):
        index.train_index(sample, "Flat", len(sample))
    with pytest.raises(D2lvError, match="training"):
        index.train_index(sample[:100], "IVF1024,Flat", len(sample))


def test_an_index_faiss_cannot_copy_to_the_gpu_stays_on_the_cpu(monkeypatch):
    cpu_index = faiss.IndexFlatL2(128)

    def refuse(*args, **kwargs):
        raise RuntimeError("not implemented for this quantiser")

    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", lambda: type("Options", (), {})(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", refuse)
    with pytest.warns(UserWarning, match="stays on the CPU"):
        assert index.on_gpus(cpu_index, 1) is cpu_index


def test_faiss_uses_gpus_only_when_it_sees_them(monkeypatch):
    assert device.faiss_gpus("cpu") == 0
    assert device.faiss_gpus("auto") == 0  # the CPU build here
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    assert device.faiss_gpus("auto") == 2 and device.faiss_gpus("cuda") == 2
    assert device.faiss_gpus("cpu") == 0
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    with pytest.warns(UserWarning, match="no GPU"):
        assert device.faiss_gpus("cuda") == 0
