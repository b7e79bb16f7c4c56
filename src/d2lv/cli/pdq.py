"""Subcommands of the hash branch: ``pdq-hash`` (a shard's PDQ hashes), ``pdq-search`` (a query shard's
nearest references by Hamming distance) and ``pdq-export`` (the references' hashes for hash-sharing lists)."""

from __future__ import annotations

import argparse
import sys

from d2lv.cli.common import Subparsers, add_command
from d2lv.io.images import DecodeParams
from d2lv.pdq.params import PdqParams


def _pdq_hash(args: argparse.Namespace) -> None:
    from d2lv.io import manifest
    from d2lv.pdq import hashes

    found = hashes.hash_manifest(manifest.read_manifest(args.manifest), dihedral=args.dihedral,
                                 max_pixels=args.max_pixels, progress=not args.quiet)
    hashes.write_hashes(args.out, found, {"set": args.set})


def _pdq_search(args: argparse.Namespace) -> None:
    from d2lv.io import tables
    from d2lv.pdq import hashes

    pairs = hashes.query_candidates(hashes.read_hashes(args.queries), hashes.read_hashes(args.references),
                                    PdqParams.from_args(args), progress=not args.quiet)
    tables.write_table(pairs, args.out, tables.PDQ_PAIRS)
    print(f"{len(pairs)} hash candidates for {pairs.query_id.nunique()} queries", file=sys.stderr)


def _pdq_gather(args: argparse.Namespace) -> None:
    from d2lv.pdq import hashes

    gathered = hashes.read_hashes(args.shards)
    hashes.write_hashes(args.out, gathered)
    print(f"{len(gathered)} reference hashes gathered from {len(args.shards)} shards", file=sys.stderr)


def _pdq_export(args: argparse.Namespace) -> None:
    from d2lv.pdq import hashes

    found = hashes.read_hashes(args.references)
    hashes.write_threatexchange(args.out, found)
    print(f"{len(found)} reference hashes written to {args.out}", file=sys.stderr)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "pdq-hash", _pdq_hash, "PDQ hashes of a manifest's images (one per image, or the 8 "
                    "dihedral variants of each with --dihedral: query views, so rotated and mirrored copies match)")
    p.add_argument("manifest", help="manifest .parquet")
    p.add_argument("--set", default="", help="the set's name, kept in the file's attributes")
    p.add_argument("--dihedral", action="store_true", help="hash all eight rotations and mirrorings")
    p.add_argument("-o", "--out", required=True, help="hashes .h5")
    DecodeParams.add_arguments(p)

    p = add_command(sub, "pdq-search", _pdq_search, "each query's nearest references by PDQ Hamming distance, "
                    "over all of its views (the query and its crops): the hash branch's candidates")
    p.add_argument("--queries", nargs="+", required=True, help="hashes .h5 of one query shard's views")
    p.add_argument("--references", nargs="+", required=True, help="reference hashes .h5")
    p.add_argument("-o", "--out", required=True, help="candidates .parquet")
    PdqParams.add_arguments(p)

    p = add_command(sub, "pdq-gather", _pdq_gather, "gather the reference shards' hashes into one file, which every "
                    "search reads (one input for Snakemake, not one per shard)")
    p.add_argument("shards", nargs="+", help="reference hashes .h5 of each shard")
    p.add_argument("-o", "--out", required=True, help="hashes .h5")

    p = add_command(sub, "pdq-export", _pdq_export, "the references' PDQ hashes as ThreatExchange's pdq-photo-hasher "
                    "prints them (hash,quality,id per line), for hash-sharing lists and HMA banks")
    p.add_argument("--references", nargs="+", required=True, help="reference hashes .h5")
    p.add_argument("-o", "--out", required=True, help="hashes .csv")
