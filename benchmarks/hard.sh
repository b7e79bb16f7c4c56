#!/usr/bin/env bash
# The hard benchmark: tiles of procedural graphics and Debian wallpapers (fetched at run time, never
# committed) and photos outside the training split, 14 edit families, hard negatives that are the other
# tile of a copied picture. Builds it, runs d2lv and the baselines on it (default configuration plus the
# shard sizes of benchmarks/disc1k.yaml), and prints the report's path.
#   bash benchmarks/hard.sh [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data
wallpapers=$(mktemp -d)
trap 'rm -rf "$wallpapers"' EXIT
bash benchmarks/fetch-wallpapers.sh "$wallpapers"
d2lv bench make-hard "$data/imagenet-sample" "$data/bsds500/val" "$data/bsds500/test" --wallpapers "$wallpapers" \
    -o resources/hard --seed 0
d2lv bench run resources/hard -o results/hard --cores "${1:-all}" --configfile benchmarks/disc1k.yaml
echo "report: results/hard/bench/report.md" >&2
