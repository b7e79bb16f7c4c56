#!/usr/bin/env bash
# Fine-tune the global descriptor (EfficientNet-Lite0 + GeM, SSCD-style InfoNCE + KoLeo over d2lv's copy
# edits) on the training photos only: ../shared/data/ukbench and ../shared/data/bsds500/train. The
# benchmarks draw their photos from the others (no leakage). On the CPU: 80 steps of 64 images (two
# edited views each), a 256-d projection; later options override these (e.g. --dim 0: no projection).
#   bash scripts/train-descriptor.sh OUT.pt [train-descriptor options]   (about 25 min on 2 CPU cores)
# Use the result with `--config descriptor.checkpoint=OUT.pt`. docs/experiments.md says how the two checkpoints
# this made compare with the ImageNet weights d2lv uses by default.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/training-photos.sh
out=${1:?usage: bash scripts/train-descriptor.sh OUT.pt [train-descriptor options]}
shift
training_manifests_tmp
OMP_NUM_THREADS=2 d2lv train-descriptor "${photos[@]}" -o "$out" \
    --steps 80 --batch-size 64 --device cpu --workers 1 --threads 2 --seed 0 "$@"
