"""Seconds per verified pair: the ``verify`` step's own pairs, timed one by one on one core.

    OMP_NUM_THREADS=1 python benchmarks/verify_speed.py results/disc1k [--pairs 3000]

Reads a finished run's verified pairs of the whole-query view (``RESULTS/work/local/queries/scores``)
and its feature stores, verifies the first ``--pairs`` of them again with ``d2lv.local.verify`` at
config.yaml's settings, and prints milliseconds per pair and how many pairs scored the same as the
run. To time another version of the code (e.g. before a change), run this script with that
checkout's ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import pandas as pd
import yaml

from d2lv.local import store, verify
from d2lv.local.params import VerifyParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a finished run's results folder")
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    work = args.results / "work"
    scored = pd.concat([pd.read_parquet(p) for p in sorted((work / "local/queries/scores").glob("*.parquet"))])
    pairs = scored.head(args.pairs)
    queries = store.FeatureStore(sorted((work / "features/queries").glob("*.h5")))
    references = store.FeatureStore(sorted((work / "features/references").glob("*.h5")))
    config = yaml.safe_load(Path(__file__).parents[1].joinpath("config.yaml").read_text())
    params = VerifyParams.from_config(config)
    extraction = references.extraction()
    features = [(queries.get(q), references.get(r)) for q, r in zip(pairs.query_id, pairs.reference_id)]
    start = time.perf_counter()
    found = [verify.verify_pair(q, r, params, extraction) for q, r in features]
    seconds = (time.perf_counter() - start) / len(features)
    same = sum(f.n_inliers == n for f, n in zip(found, pairs.n_inliers))
    print(f"{len(features)} pairs of {pairs.query_id.nunique()} queries: {seconds * 1e3:.3f} ms per pair; "
          f"{same} with the run's inlier count")


if __name__ == "__main__":
    main()
