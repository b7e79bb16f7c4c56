"""Subcommands over a built collection: ``collection`` (the workflow records what it built), ``query`` (match
images one at a time) and ``serve`` (the same over HTTP)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from d2lv.cli.common import Subparsers, add_command
from d2lv.errors import InputError


def _collection(args: argparse.Namespace) -> None:
    from d2lv.query import collection

    files = {name: getattr(args, name) for name in collection.FILE_NAMES}
    try:
        config = json.loads(args.config_json)
    except ValueError as err:
        raise InputError(f"--config-json is not JSON: {err}") from err
    record = collection.write_collection(args.results, files, config)
    print(f"collection version {record['version']}: {record['references']} references", file=sys.stderr)


def _query(args: argparse.Namespace) -> None:
    from d2lv.io import isc
    from d2lv.io.images import ImageError, image_id, load_image
    from d2lv.query import answers, collection, matcher

    started = time.perf_counter()
    built = collection.read_collection(args.collection)
    found = matcher.Matcher(built, quiet=args.quiet)
    withdrawn = collection.read_withdrawn(args.withdrawn or built.withdrawn_file)
    print(f"collection {built.version} ({built.references} references) loaded in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    results, failed = [], 0
    for path in args.images:
        try:
            rgb = load_image(path, found.decode.max_pixels)
        except ImageError as err:
            print(f"d2lv query: {path}: skipped: {err}", file=sys.stderr)
            failed += 1
            continue
        started = time.perf_counter()
        answer = found.match(rgb, image_id(path)).without(withdrawn)
        if not args.quiet:
            print(f"{path}: {len(answer.pairs)} verified candidates in {time.perf_counter() - started:.2f} s",
                  file=sys.stderr)
        results.append(answer)
    keep = found.output.max_results_per_query
    if args.json:
        json.dump([answers.to_json(answer, keep if not args.all else None) for answer in results], sys.stdout,
                  indent=1)
        sys.stdout.write("\n")
    else:
        import pandas as pd

        top = [answer.top(keep) for answer in results]
        sys.stdout.write(isc.isc_csv_text(pd.concat(top) if top else answers.empty_matches()))
    if failed:
        raise InputError(f"{failed} of {len(args.images)} images could not be read (see above)")


def _serve(args: argparse.Namespace) -> None:
    from d2lv.query import server

    server.serve(args.collection, server.ServeSettings(
        host=args.host, port=args.port, workers=args.workers, max_body_bytes=args.max_body_mb * 1_000_000,
        poll_seconds=args.poll_seconds, withdrawn=args.withdrawn or None), quiet=args.quiet)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "collection", _collection, "record what a run built for `d2lv query` and `d2lv serve` "
                    "(OUT/collection.json: the files the query side reads, the resolved config, a version)")
    p.add_argument("--results", required=True, help="the run's results folder (collection.json goes there)")
    p.add_argument("--config-json", required=True, help="the run's resolved config, as JSON")
    from d2lv.query.collection import FILE_NAMES

    for name in FILE_NAMES:
        p.add_argument(f"--{name}", nargs="*", default=[], help=f"the collection's {name} file(s)")

    p = add_command(sub, "query", _query, "match images one at a time against a collection a run built",
                    description="Match images against the collection the workflow built in OUT (snakemake ... "
                    "--config results=OUT): each image runs the query side of the workflow in this process (detect, "
                    "SIFT, global descriptor, PDQ, recall, verification, merge), with the run's settings, and gets "
                    "the scores the workflow would give it. Prints ISC CSV (query_id,reference_id,score), the "
                    "query id being the file's stem, or with --json every verified candidate with its evidence.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
    p.add_argument("--collection", required=True, metavar="OUT", help="results folder of a finished run")
    p.add_argument("--json", action="store_true", help="JSON: each image's boxes and candidates with their "
                   "per-branch evidence (votes, inliers per view, global similarity, PDQ distance, crop)")
    p.add_argument("--all", action="store_true", help="with --json: every verified candidate, not only the "
                   "merge.max_results_per_query best")
    p.add_argument("--withdrawn", default="", help="file of withdrawn reference ids, one per line, never "
                   "returned (default: OUT/withdrawn.txt when it exists)")

    p = add_command(sub, "serve", _serve, "serve a collection over HTTP: POST /match, POST /compare, GET /health",
                    description="An HTTP service over the collection a run built in OUT. POST /match with an image "
                    "(the request body, or a multipart field 'image') answers its matches with evidence; "
                    "POST /compare with two images (multipart fields 'a' and 'b') answers the pair's evidence and "
                    "score; ?draw=1 answers a PNG of the inlier correspondences instead; GET /health gives the "
                    "collection's version and counts. When a run rewrites OUT/collection.json (references added), "
                    "the service loads the new version and switches to it once loaded, while requests in flight "
                    "finish on the old one. Reference ids listed in OUT/withdrawn.txt are never returned.")
    p.add_argument("--collection", required=True, metavar="OUT", help="results folder of a finished run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--workers", type=int, default=2, help="requests matched at once (each uses the collection's "
                   "threads); more wait their turn")
    p.add_argument("--max-body-mb", type=int, default=20, help="largest request body, in MB (413 above)")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="how often to look for a new collection "
                   "version (SIGHUP also looks at once)")
    p.add_argument("--withdrawn", default="", help="file of withdrawn reference ids (default: OUT/withdrawn.txt); "
                   "read again whenever it changes")
