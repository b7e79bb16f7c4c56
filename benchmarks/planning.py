"""Planning at DISC21's size: `snakemake -n -q` over 1,000,000 reference and 50,000 query files, and one
`manifest` job there against the same job in a 1,000-file folder.

    python3 benchmarks/planning.py -o /tmp/planning [--references 1000000] [--queries 50000]

The files are empty (planning lists names; it decodes nothing): a manifest job records each as unusable,
which is the job's whole cost without the decoding, so its time shows what the folder's size adds.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from d2lv import workflow
from d2lv.io.images import list_folder
from d2lv.io.manifest import plan_shards


def empty_files(folder: Path, prefix: str, n: int) -> None:
    """``n`` empty .jpg files named ``<prefix><number>.jpg`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}{i:07d}.jpg").touch()


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=workflow.repository_root())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--references", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--shard-size", type=int, default=500)
    args = parser.parse_args()
    empty_files(args.out / "big" / "references", "R", args.references)
    empty_files(args.out / "big" / "queries", "Q", args.queries)
    start = time.perf_counter()
    listing = list_folder(args.out / "big" / "references")
    listed = time.perf_counter() - start
    shard = plan_shards(listing.images, args.shard_size)["0000"]
    small = args.out / "small" / "references"  # the same shard's files, among 1,000
    empty_files(small, "F", 1000 - len(shard))
    for path in shard:
        (small / Path(path).name).touch()
    rows = [("list the reference folder (parse time)", listed)]
    command = workflow.snakemake_command(
        "all", cores=2, dry_run=True, queries=args.out / "big" / "queries",
        references=args.out / "big" / "references", results=args.out / "results", shard_size=args.shard_size)
    rows.append((f"snakemake -n -q, {args.references:,} references and {args.queries:,} queries", seconds(command)))
    for name in ("big", "small"):
        files = [str(args.out / name / "references" / Path(path).name) for path in shard]
        manifest = ["d2lv", "manifest", "--quiet", *files, "-o", str(args.out / f"manifest-{name}.parquet")]
        rows.append((f"one manifest job ({len(files)} files) in the {name} folder", seconds(manifest)))
    print("| step | seconds |\n| --- | --- |")
    for step, value in rows:
        print(f"| {step} | {value:.2f} |")


if __name__ == "__main__":
    main()
