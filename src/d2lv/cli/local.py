"""Subcommands of the local branch: ``sift``, the one reference index (``local-train``, ``local-add``,
``local-merge``), ``local-recall`` and ``verify``."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from d2lv.cli.common import Subparsers, add_command, add_threads, set_faiss_threads
from d2lv.errors import InputError
from d2lv.io import atomic
from d2lv.io.images import DecodeParams
from d2lv.io.paths import read_path_list
from d2lv.local.params import (
    CandidateParams,
    IndexDevice,
    IndexParams,
    RecallParams,
    SiftParams,
    SingleCandidateRule,
    VerifyParams,
)

#: Seeds the index's training sample.
TRAINING_SEED = 0


def _sift(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from d2lv.io import images, manifest
    from d2lv.local import sift, store

    params = SiftParams.from_args(args)
    usable = manifest.read_manifest(args.manifest)
    features = []
    for row in tqdm(usable.itertuples(index=False), total=len(usable), desc="sift", unit="img",
                    disable=args.quiet):
        features.append(store.image_features(row.id, images.load_gray(row.path, args.max_pixels), params))
    store.write_store(args.out, features, {**dataclasses.asdict(params), "rootsift_scale": sift.ROOTSIFT_SCALE})


def _local_train(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.local import index, store

    set_faiss_threads(args.threads)
    params = IndexParams.from_args(args)
    stores = [store.FeatureStore(p) for p in args.stores]
    sample = index.training_sample(stores, params.train_descriptors, TRAINING_SEED)
    mean = sum(len(s.descriptors) for s in stores) / max(1, sum(len(s) for s in stores))
    trained = index.train_index(sample, params.factory, round(mean * args.references),
                                IndexDevice.from_args(args).device)
    with atomic.replacing(args.out) as partial:
        faiss.write_index(trained, str(partial))
    print(f"trained {faiss.extract_index_ivf(trained).nlist} lists on {len(sample)} descriptors", file=sys.stderr)


def _local_add(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.io import tables
    from d2lv.local import index, store

    set_faiss_threads(args.threads)
    shard = store.FeatureStore(args.store)
    with atomic.replacing(args.out) as partial:
        faiss.write_index(index.add_shard(faiss.read_index(str(args.trained)), shard, args.shard), str(partial))
    tables.write_table(index.catalogue([(args.shard, shard)]), args.catalogue, tables.CATALOGUE)


def _local_merge(args: argparse.Namespace) -> None:
    import faiss

    from d2lv.io import tables
    from d2lv.local import index

    index.merge_shards(faiss.read_index(str(args.trained)), args.shards, args.out)
    catalogue = tables.read_tables(args.catalogues, tables.CATALOGUE).sort_values("number", kind="stable")
    tables.write_table(catalogue, args.catalogue, tables.CATALOGUE)
    print(f"{len(catalogue)} references, {index.index_bytes(args.out) / max(1, len(catalogue)):.0f} bytes each",
          file=sys.stderr)


def _local_recall(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.local import index, recall, store

    set_faiss_threads(args.threads)
    candidates, rule = CandidateParams.from_args(args), SingleCandidateRule.from_args(args)
    merged = index.open_merged(args.index, IndexDevice.from_args(args).device)
    catalogue = tables.read_tables([args.catalogue], tables.CATALOGUE)
    pairs = recall.search_index(merged, catalogue, store.FeatureStore(args.queries), RecallParams.from_args(args),
                                recall.pairs_to_keep(candidates.topk, candidates.mode), progress=not args.quiet)
    tables.write_table(recall.select_candidates(pairs, candidates.topk, candidates.mode, rule), args.out,
                       tables.PAIRS)


def _verify(args: argparse.Namespace) -> None:
    from d2lv.io import tables, views
    from d2lv.local import store, verify

    queries = store.FeatureStore(args.queries)
    pairs = views.pairs_in_view(tables.read_pair_keys(args.pairs), queries.ids)
    references = [*args.references, *(read_path_list(args.references_from) if args.references_from else [])]
    if not references:
        raise InputError("no reference feature stores: give --references or --references-from")
    scores = verify.verify_pairs(pairs, queries, store.FeatureStore(references), VerifyParams.from_args(args),
                                 args.branch, progress=not args.quiet)
    tables.write_table(scores, args.out, tables.SCORES)


def _add_index_commands(sub: Subparsers) -> None:
    p = add_command(sub, "local-train", _local_train, "train the local index's quantisers on a seeded sample "
                    "of reference descriptors (writes an empty, trained index)")
    p.add_argument("stores", nargs="+", help="reference feature stores .h5 to sample (the first shards)")
    p.add_argument("--references", type=int, required=True, help="about how many references the whole "
                   "collection has (sizes the auto factory)")
    p.add_argument("-o", "--out", required=True, help="trained index .faiss")
    IndexParams.add_arguments(p)
    IndexDevice.add_arguments(p)
    add_threads(p)

    p = add_command(sub, "local-add", _local_add, "encode one reference shard into the trained index")
    p.add_argument("store", help="the shard's reference feature store .h5")
    p.add_argument("--trained", required=True, help="trained index from `d2lv local-train`")
    p.add_argument("--shard", type=int, required=True, help="the shard's number (the high bits of its ids)")
    p.add_argument("-o", "--out", required=True, help="the shard's index .faiss")
    p.add_argument("--catalogue", required=True, help="the shard's reference numbers and ids .parquet")
    add_threads(p)

    p = add_command(sub, "local-merge", _local_merge, "merge every shard's inverted lists into one index whose "
                    "lists are memory-mapped from OUT.ivfdata")
    p.add_argument("--trained", required=True, help="trained index from `d2lv local-train`")
    p.add_argument("--shards", nargs="+", required=True, help="shard indexes from `d2lv local-add`")
    p.add_argument("--catalogues", nargs="+", required=True, help="shard catalogues from `d2lv local-add`")
    p.add_argument("-o", "--out", required=True, help="merged index .faiss (its lists: the same name, .ivfdata)")
    p.add_argument("--catalogue", required=True, help="every reference's number and id .parquet")


def register(sub: Subparsers) -> None:
    p = add_command(sub, "sift", _sift, "extract RootSIFT keypoints of the usable images of a manifest into HDF5")
    p.add_argument("manifest", help="manifest .parquet from `d2lv manifest`")
    p.add_argument("-o", "--out", required=True, help="feature store .h5")
    SiftParams.add_arguments(p)
    DecodeParams.add_arguments(p)

    _add_index_commands(sub)

    p = add_command(sub, "local-recall", _local_recall, "each query's candidates over the whole collection: "
                    "kNN of its descriptors in the merged index, votes per reference")
    p.add_argument("--index", required=True, help="merged index from `d2lv local-merge`")
    p.add_argument("--catalogue", required=True, help="reference numbers and ids from `d2lv local-merge`")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("-o", "--out", required=True, help="candidates .parquet")
    RecallParams.add_arguments(p)
    CandidateParams.add_arguments(p)
    SingleCandidateRule.add_arguments(p)
    IndexDevice.add_arguments(p)
    add_threads(p)

    p = add_command(sub, "verify", _verify, "score candidate pairs: ratio-test matches, mirrored pass, geometry")
    p.add_argument("--pairs", required=True, nargs="+", help="candidate pairs .parquet of any branch")
    p.add_argument("--queries", required=True, nargs="+", help="query feature stores .h5")
    p.add_argument("--references", nargs="*", default=[], help="reference feature stores .h5 (read lazily: "
                   "only the candidates' features are loaded)")
    p.add_argument("--references-from", help="a file naming more reference feature stores, one per line (the "
                   "workflow's list of the collection's shards)")
    p.add_argument("-o", "--out", required=True, help="scores .parquet")
    p.add_argument("--branch", default="local", help="branch name written to the score table")
    VerifyParams.add_arguments(p)
