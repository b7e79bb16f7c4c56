#!/usr/bin/env bash
# Reproduce the copy-region detector shipped in src/d2lv/detect/weights/ (detect.weights: ""):
# YOLOv5u nano, on CPU, on images synthesised (pastes, screenshots, memes, paddings, full-frame negatives)
# from the training photos only: ../shared/data/ukbench and ../shared/data/bsds500/train. The benchmarks
# draw their photos from the others (no leakage). Three runs at detect's default settings (config.yaml:
# 2000 images, 20 epochs), each on a newly synthesised set (seeds 0, 1, 2): the first from scratch, each
# next one going on from the weights before it, as detect.train: true goes on from the shipped detector.
#   bash scripts/train-detector.sh [OUT.pt]      (about 2 h 15 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/training-photos.sh
out=${1:-src/d2lv/detect/weights/copy-region-yolov5nu.pt}
training_manifests_tmp
start=scratch
for seed in 0 1 2; do
    d2lv train-detector "${photos[@]}" -o "$work/run$seed.pt" \
        --work-dir "$work/run$seed" --device cpu --seed "$seed" --initial-weights "$start"
    start=$work/run$seed.pt
done
cp "$start" "$out"
