#!/usr/bin/env bash
# Train the copy head (descriptor.head) on the frozen EfficientNet-Lite0's cached features of edited views of
# the training photos only: ../shared/data/ukbench and ../shared/data/bsds500/train, plus 300 synthetic
# graphics. The benchmarks draw their photos from the others (no leakage). The features cache
# (results/train-head/cache.h5) is kept: a rerun continues an interrupted one, or trains again without
# running the backbone; later options override these (e.g. --hidden 512: an MLP head).
#   bash scripts/train-head.sh OUT.pt [train-head options]
# `bash scripts/train-head.sh src/d2lv/descriptor/weights/copy_head.pt` made the shipped head (the cache
# took about 19 min, the training 30 s). One torch thread: on a 2-core machine that others share, two
# threads ran the backbone about 4x slower than one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/training-photos.sh
out=${1:?usage: bash scripts/train-head.sh OUT.pt [train-head options]}
shift
training_manifests_tmp
mkdir -p results/train-head
OMP_NUM_THREADS=2 d2lv train-head "${photos[@]}" -o "$out" --cache results/train-head/cache.h5 --graphics 300 \
    --views 3 --device cpu --threads 1 --seed 0 "$@"
