"""Subcommands of the local branch: ``sift``, ``local-index``, ``local-recall``, ``local-candidates``, ``verify``."""

from __future__ import annotations

import argparse

from d2lv.cli.common import Subparsers, add_command, add_threads, set_faiss_threads
from d2lv.io.images import DecodeParams
from d2lv.local.params import (
    CandidateParams,
    IndexParams,
    RecallParams,
    SiftParams,
    SingleCandidateRule,
    VerifyParams,
)


def _sift(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from d2lv.io import images, manifest
    from d2lv.local import sift, store

    params = SiftParams.from_args(args)
    usable = manifest.read_manifest(args.manifest)
    features = []
    for row in tqdm(usable.itertuples(index=False), total=len(usable), desc="sift", unit="img",
                    disable=args.quiet):
        gray = images.load_gray(row.path, args.max_pixels)
        keypoints, descriptors = sift.extract(gray, params.short_side, params.max_keypoints)
        features.append(store.ImageFeatures(row.id, row.width, row.height, keypoints, descriptors))
    store.write_store(args.out, features, {"short_side": params.short_side, "max_keypoints": params.max_keypoints,
                                           "rootsift_scale": sift.ROOTSIFT_SCALE})


def _local_index(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.local import recall, store

    set_faiss_threads(args.threads)
    references = store.FeatureStore(args.store)
    faiss.write_index(recall.build_index(references, IndexParams.from_args(args).factory), str(args.out))


def _local_recall(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.io import tables
    from d2lv.local import recall, store

    set_faiss_threads(args.threads)
    pairs = recall.search_shard(faiss.read_index(str(args.index)), store.FeatureStore(args.references),
                                store.FeatureStore(args.queries), RecallParams.from_args(args),
                                progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.PAIRS)


def _local_candidates(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.local import recall

    params = CandidateParams.from_args(args)
    pairs = tables.read_tables(args.pairs, tables.PAIRS)
    candidates = recall.select_candidates(pairs, params.topk, params.mode, SingleCandidateRule.from_args(args))
    tables.write_table(candidates, args.out, tables.PAIRS)


def _verify(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.local import store, verify

    pairs = tables.read_pair_keys(args.pairs)
    scores = verify.verify_pairs(pairs, store.FeatureStore(args.queries), store.FeatureStore(args.references),
                                 VerifyParams.from_args(args), args.branch, progress=not args.quiet)
    tables.write_table(scores, args.out, tables.SCORES)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "sift", _sift, "extract RootSIFT keypoints of the usable images of a manifest into HDF5")
    p.add_argument("manifest", help="manifest .parquet from `d2lv manifest`")
    p.add_argument("-o", "--out", required=True, help="feature store .h5")
    SiftParams.add_arguments(p)
    DecodeParams.add_arguments(p)

    p = add_command(sub, "local-index", _local_index, "build a faiss index over a reference shard's descriptors")
    p.add_argument("store", help="reference feature store .h5")
    p.add_argument("-o", "--out", required=True, help="faiss index file")
    IndexParams.add_arguments(p)
    add_threads(p)

    p = add_command(sub, "local-recall", _local_recall,
                    "kNN-search query descriptors in a shard index, vote per reference")
    p.add_argument("--index", required=True, help="faiss index from `d2lv local-index`")
    p.add_argument("--references", required=True, help="the shard's feature store .h5")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("-o", "--out", required=True, help="pairs .parquet")
    RecallParams.add_arguments(p)
    add_threads(p)

    p = add_command(sub, "local-candidates", _local_candidates,
                    "gather per-shard local pairs into each query's final candidates")
    p.add_argument("--pairs", required=True, nargs="+", help="per-shard pairs .parquet")
    p.add_argument("-o", "--out", required=True, help="candidates .parquet")
    CandidateParams.add_arguments(p)
    SingleCandidateRule.add_arguments(p)

    p = add_command(sub, "verify", _verify, "score candidate pairs: ratio-test matches, mirrored pass, geometry")
    p.add_argument("--pairs", required=True, nargs="+", help="candidate pairs .parquet of any branch")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("--references", required=True, nargs="+", help="reference feature stores .h5")
    p.add_argument("-o", "--out", required=True, help="scores .parquet")
    p.add_argument("--branch", default="local", help="branch name written to the score table")
    VerifyParams.add_arguments(p)
