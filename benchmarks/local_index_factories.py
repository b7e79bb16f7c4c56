"""Which faiss factory for the local index: bytes per reference, candidate recall, search time.

    python benchmarks/local_index_factories.py results/disc1k resources/disc1k/ground_truth.csv \
        [--queries 100] [--factory IVF2048,PQ16 auto ...] [--nprobe 16 32] [--no-exact]

Reads a finished run's reference and query feature stores (``RESULTS/work/features``), builds the
local index of each factory the way the workflow does (trained on a seeded sample, one shard added per
reference shard, merged on disk), and searches it with the first ``--queries`` copy queries. Candidate
recall is the share of those queries whose true reference is among their top ``local.topk`` local
candidates, relative to the same share with exact search (``IVF1,Flat``: one list, every descriptor;
``--no-exact`` skips it, for collections where it would take hours). ``auto`` is the workflow's default,
sized for the run's descriptors. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import faiss
import yaml

from d2lv.io import isc
from d2lv.local import index, recall, store
from d2lv.local.params import CandidateParams, IndexParams, RecallParams

FACTORIES = ("IVF2048,PQ16", "OPQ16_64,IVF2048,PQ16", "IVF2048,PQ8", "IVF2048,Flat")
EXACT = "IVF1,Flat"


def build(factory: str, shards: list[tuple[int, store.FeatureStore]], folder: Path, sample_size: int):
    sample = index.training_sample([s for _, s in shards], sample_size, seed=0)
    trained = index.train_index(sample, factory, sum(len(s.descriptors) for _, s in shards), device="cpu")
    paths = []
    for shard, shard_store in shards:
        path = folder / f"{shard}.faiss"
        faiss.write_index(index.add_shard(trained, shard_store, shard), str(path))
        paths.append(path)
    index.merge_shards(trained, paths, folder / "merged.faiss")
    return index.read_index(folder / "merged.faiss"), index.index_bytes(folder / "merged.faiss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("ground_truth")
    parser.add_argument("--queries", type=int, default=100, help="copy queries searched")
    parser.add_argument("--factory", nargs="+", default=list(FACTORIES))
    parser.add_argument("--nprobe", type=int, nargs="+", help="lists visited (default: local.nprobe)")
    parser.add_argument("--no-exact", dest="exact", action="store_false", help="no exact search to compare with")
    args = parser.parse_args()
    config = yaml.safe_load(Path("config.yaml").read_text())
    params, topk = RecallParams.from_config(config), CandidateParams.from_config(config).topk
    features = Path(args.results) / "work" / "features"
    shards = [(int(p.stem), store.FeatureStore(p)) for p in sorted((features / "references").glob("*.h5"))]
    n_references = sum(len(s) for _, s in shards)
    truth = isc.read_ground_truth(args.ground_truth)
    truth = truth[truth.reference_id != ""]
    queries = store.FeatureStore(sorted((features / "queries").glob("*.h5")))
    chosen = sorted(set(truth.query_id) & set(queries.ids))[: args.queries]
    subset = Path(tempfile.mkdtemp()) / "queries.h5"
    store.write_store(subset, [queries.get(q) for q in chosen], queries.attrs)
    queries = store.FeatureStore(subset)
    truth = truth[truth.query_id.isin(chosen)]
    rows = []
    for factory in [EXACT, *args.factory] if args.exact else args.factory:
        with tempfile.TemporaryDirectory() as folder:
            merged, size = build(factory, shards, Path(folder), IndexParams().train_descriptors)
            nlist = faiss.extract_index_ivf(merged).nlist
            for nprobe in args.nprobe or [params.nprobe]:
                start = time.perf_counter()
                pairs = recall.search_index(merged, index.catalogue(shards), queries,
                                            dataclasses.replace(params, nprobe=nprobe), topk, progress=False)
                seconds = (time.perf_counter() - start) / len(chosen)
                found = isc.is_positive(pairs, truth).sum() / len(truth)
                rows.append((factory, nlist, nprobe, size / n_references, found, seconds))
    exact = rows[0][4] if args.exact else float("nan")
    print("| factory | lists | nprobe | bytes per reference | candidate recall (vs exact) | search s/query |")
    print("| --- | --- | --- | --- | --- | --- |")
    for factory, nlist, nprobe, size, found, seconds in rows:
        versus = f" ({found / exact:.3f})" if args.exact else ""
        print(f"| {factory} | {nlist} | {nprobe} | {size:,.0f} | {found:.4f}{versus} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
