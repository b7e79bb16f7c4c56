#!/usr/bin/env bash
# Run by `snakemake --sdm conda` after creating envs/d2lv.yaml: pip's install of d2lv pulled in
# opencv-python (through ultralytics), which shadows the contrib build's SIFT.
set -euo pipefail
PYTHON="$CONDA_PREFIX/bin/python" bash "$(dirname "$0")/../scripts/fix_opencv.sh"
