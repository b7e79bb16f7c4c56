"""How much does an approximate (IVF) local index lose against exact search?

Usage (after a workflow run on a set with ground truth):

    python benchmarks/local_index_recall.py RESULTS GROUND_TRUTH [--factory IVF1024,Flat] [--nprobe 16]

Reports, over all reference shards of RESULTS/work: the share of exact
k-nearest neighbours the IVF index also returns, the share of true
(query, reference) pairs among each query's candidates for both indexes, and
the search times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from d2lv.io import isc
from d2lv.local import recall as local
from d2lv.local import store
from d2lv.local.params import RecallParams
from d2lv.local.sift import dequantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("ground_truth")
    parser.add_argument("--factory", default="auto")
    parser.add_argument("--nprobe", type=int, default=16)
    args = parser.parse_args()

    work = Path(args.results) / "work"
    queries = store.FeatureStore(sorted((work / "features" / "queries").glob("*.h5")))
    references = store.FeatureStore(sorted((work / "features" / "references").glob("*.h5")))
    params = RecallParams(nprobe=args.nprobe)
    factory = local.resolve_factory(args.factory, len(references.descriptors))
    if factory == "Flat":
        factory = local.resolve_factory("auto", local.EXACT_SEARCH_LIMIT + 1)
    vectors = dequantize(queries.descriptors)

    timings, neighbours, candidates = {}, {}, {}
    for name, spec in (("exact", "Flat"), ("ivf", factory)):
        index = local.build_index(references, spec)
        local.set_nprobe(index, args.nprobe)
        start = time.perf_counter()
        _, neighbours[name] = index.search(vectors, params.knn)
        candidates[name] = local.search_shard(index, references, queries, params, progress=False)
        timings[name] = time.perf_counter() - start

    overlap = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(neighbours["exact"], neighbours["ivf"])])
    gt = isc.read_ground_truth(args.ground_truth)
    positives = gt[gt.reference_id != ""]
    truth = set(zip(positives.query_id, positives.reference_id))
    print(f"{len(references)} references ({len(references.descriptors)} descriptors), {len(queries)} queries "
          f"({len(vectors)} descriptors); IVF index {factory}, nprobe {args.nprobe}")
    print(f"IVF returns {overlap:.4f} of the exact {params.knn} nearest neighbours")
    for name, pairs in candidates.items():
        found = sum(pair in truth for pair in zip(pairs.query_id, pairs.reference_id))
        print(f"{name:>5}: true pairs among top-{params.topk} candidates {found}/{len(truth)}"
              f" = {found / len(truth):.4f}; search + votes {timings[name]:.1f} s")


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
