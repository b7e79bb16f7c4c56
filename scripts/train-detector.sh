#!/usr/bin/env bash
# Reproduce the copy-region detector shipped in src/d2lv/detect/weights/ (detect.weights: ""):
# YOLOv5u nano trained from scratch, on CPU, on 2000 images synthesised (pastes, screenshots, memes,
# paddings, full-frame negatives) from the training photos only: ../shared/data/ukbench and
# ../shared/data/bsds500/train. The benchmarks draw their photos from the others (no leakage).
#   bash scripts/train-detector.sh [OUT.pt]      (about 40 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data
out=${1:-src/d2lv/detect/weights/copy-region-yolov5nu.pt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
d2lv manifest -q "$data/ukbench" -o "$work/ukbench.parquet"
d2lv manifest -q "$data/bsds500/train" -o "$work/bsds500-train.parquet"
# The training settings are detect's defaults (config.yaml), so detect.train: true repeats them on your references.
d2lv train-detector "$work/ukbench.parquet" "$work/bsds500-train.parquet" -o "$out" --work-dir "$work/run" \
    --device cpu --seed 0
