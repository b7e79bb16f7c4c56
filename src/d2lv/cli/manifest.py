"""Subcommands that take inputs in: ``manifest`` (decode and check a shard), ``skipped`` (what was not used) and
``check-references`` (stop before training when no reference can be used)."""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from d2lv.cli.common import Subparsers, add_command
from d2lv.io.images import DecodeParams
from d2lv.io.paths import read_path_list
from d2lv.local.params import UsableParams

#: The sets whose inputs ``skipped`` reports.
INPUT_SETS = ("queries", "references")
#: Refused files that ``check-references`` names one by one before its error (it counts the rest).
LISTED_REFUSALS = 20


def _manifest(args: argparse.Namespace) -> None:
    from d2lv.io import manifest, tables

    missing = [path for path in args.inputs if not os.path.exists(path)]
    if missing:  # a typo on the command line; a listed file that vanished since is recorded as unusable instead
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    listed = read_path_list(args.files_from) if args.files_from else []
    paths = manifest.shard_paths([*args.inputs, *listed], args.shard, args.num_shards)
    frame = manifest.build_manifest(paths, args.max_pixels, progress=not args.quiet)
    tables.write_table(frame, args.out, tables.MANIFEST)
    skipped = (frame.status != "ok").sum()
    print(f"{len(frame)} images in shard {args.shard} of {args.num_shards}, {skipped} skipped", file=sys.stderr)


def _refused(args: argparse.Namespace, name: str) -> list[tuple[str, str]]:
    """What the listing of set ``name``'s folder set aside: from the workflow's refusal list, or listed now."""
    from d2lv.io.images import list_folder
    from d2lv.io.paths import read_refusal_list

    refused, folder = getattr(args, f"{name}_refused"), getattr(args, f"{name}_folder")
    return read_refusal_list(refused) if refused else list_folder(folder).refused if folder else []


def _skipped(args: argparse.Namespace) -> None:
    from d2lv.report import skipped

    frames = [skipped.collect(name, getattr(args, f"{name}_manifests"), getattr(args, f"{name}_features"),
                              UsableParams.from_args(args).min_keypoints, _refused(args, name))
              for name in INPUT_SETS]
    skipped.write_csv(pd.concat(frames, ignore_index=True), args.out)


def _print_refused(frame: pd.DataFrame) -> None:
    """Each refused image and why, the first :data:`LISTED_REFUSALS` of them (the log shows them above the error)."""
    for row in frame.head(LISTED_REFUSALS).itertuples():
        print(f"refused: {row.path}: {row.reason}", file=sys.stderr)
    if len(frame) > LISTED_REFUSALS:
        print(f"... and {len(frame) - LISTED_REFUSALS} more", file=sys.stderr)


def _check_references(args: argparse.Namespace) -> None:
    from d2lv.io import atomic, manifest

    frame = manifest.read_manifests(args.manifests, usable_only=False)
    what = "reference image"
    if len(args.manifests) < args.num_shards:
        what += (f" in the first {len(args.manifests)} of {args.num_shards} reference shards, "
                 "which the models are trained on")
    try:
        usable = manifest.require_usable(frame, what)
    except manifest.UnusableSetError as err:
        _print_refused(frame)
        if len(frame):
            advice = ("replace the files listed above with images d2lv can read, or point "
                      "`--config references=DIR` at the folder that holds them")
        else:
            advice = "with so few references, raise shard_size so that every shard holds some"
        raise manifest.UnusableSetError(f"{err}; nothing was trained: {advice}") from None
    with atomic.replacing(args.out) as partial:
        partial.write_text(f"{usable} usable reference images in {len(args.manifests)} shards\n")


def register(sub: Subparsers) -> None:
    p = add_command(sub, "manifest", _manifest, "decode images (files, or folders searched recursively), write a "
                    "Parquet manifest of their sizes or why each is unusable")
    p.add_argument("inputs", nargs="*", help="image files and folders (none: an empty manifest)")
    p.add_argument("--files-from", help="a file naming image files, one per line (the workflow's shard list)")
    p.add_argument("-o", "--out", required=True, help="manifest .parquet")
    p.add_argument("--shard", type=int, default=0, help="keep only this shard of the inputs (0-based)")
    p.add_argument("--num-shards", type=int, default=1, help="number of shards the inputs are split into")
    DecodeParams.add_arguments(p)

    p = add_command(sub, "skipped", _skipped, "list inputs that were skipped, with the reason, as CSV")
    for name in INPUT_SETS:
        listing = p.add_mutually_exclusive_group()
        listing.add_argument(f"--{name}-folder", help=f"the {name} folder: list the files in it that are not "
                             "decoded (other formats, hidden and AppleDouble files, hidden folders)")
        listing.add_argument(f"--{name}-refused", help="those files as the workflow listed them when it was "
                             f"parsed (work/shards/{name}/refused.json), so that the folder is not listed again")
        p.add_argument(f"--{name}-manifests", nargs="*", default=[], help=f"{name} manifests .parquet")
        p.add_argument(f"--{name}-features", nargs="*", default=[], help=f"{name} feature stores .h5")
    UsableParams.add_arguments(p)
    p.add_argument("-o", "--out", required=True, help="skipped .csv")

    p = add_command(sub, "check-references", _check_references,
                    "fail, listing why, unless the reference manifests hold a usable image (before any training)")
    p.add_argument("manifests", nargs="+", help="manifests .parquet of the reference shards the models train on")
    p.add_argument("--num-shards", type=int, required=True, help="number of reference shards in all")
    p.add_argument("-o", "--out", required=True, help="a note of the usable count, written when there is one")
