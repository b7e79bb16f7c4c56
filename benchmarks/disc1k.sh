#!/usr/bin/env bash
# Regenerate the 1k benchmark's results in docs/results.md: build the 1000-reference DISC21-style
# benchmark from ../shared/data, run d2lv and the baselines on it, and copy the report into
# docs/results.md (between its results markers) and its plots into docs/.
#   bash benchmarks/disc1k.sh [CORES]
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data
# The benchmark's photos are outside the training split (ukbench/, bsds500/train/), which the shipped
# detector learnt from: `bench make` would leave those out anyway.
d2lv bench make "$data/bsds500/val" "$data/bsds500/test" "$data/imagenet-sample" -o resources/disc1k \
    --references 1000 --copies 1000 --noncopies 1000 --seed 0
d2lv bench run resources/disc1k -o results/disc1k --cores "${1:-all}" --configfile benchmarks/disc1k.yaml
python3 benchmarks/readme_results.py results/disc1k/bench docs/results.md docs
