#!/usr/bin/env bash
# Reproduce the copy-region detector shipped in src/d2lv/detect/weights/ (detect.weights: ""):
# YOLOv5u nano, on CPU, on images synthesised (pastes, screenshots, memes, paddings, full-frame negatives)
# from the training photos only: ../shared/data/ukbench and ../shared/data/bsds500/train. The benchmarks
# draw their photos from the others (no leakage). Two runs of detect's default settings (config.yaml):
#   1. 20 epochs from scratch on 2000 images (seed 0);
#   2. 20 more epochs from those weights on 2000 other images (seed 1), as detect.train: true goes on
#      from the shipped detector on your references.
#   bash scripts/train-detector.sh [OUT.pt]      (about 90 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data
out=${1:-src/d2lv/detect/weights/copy-region-yolov5nu.pt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
d2lv manifest -q "$data/ukbench" -o "$work/ukbench.parquet"
d2lv manifest -q "$data/bsds500/train" -o "$work/bsds500-train.parquet"
manifests=("$work/ukbench.parquet" "$work/bsds500-train.parquet")
d2lv train-detector "${manifests[@]}" -o "$work/first.pt" --work-dir "$work/first" --device cpu --seed 0 \
    --initial-weights scratch
d2lv train-detector "${manifests[@]}" -o "$out" --work-dir "$work/second" --device cpu --seed 1 \
    --initial-weights "$work/first.pt"
