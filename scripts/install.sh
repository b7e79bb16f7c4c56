#!/usr/bin/env bash
# One-command install on a fresh machine: d2lv with its dependencies, then an OpenCV with SIFT.
#
#   bash scripts/install.sh                 # pip install -e '.[test]'
#   bash scripts/install.sh '.[test,slurm]' # other extras
#   PYTHON=/path/to/python bash scripts/install.sh
#
# ultralytics (the copy-region detector) requires opencv-python, whose cv2 files overwrite
# those of opencv-contrib-python-headless and lose SIFT (xfeatures2d). So every other wheel
# that provides cv2 is removed afterwards, and the contrib build pip resolved is reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
target="${1:-.[test]}"

"$python" -m pip install -e "$target"
PYTHON="$python" bash scripts/fix_opencv.sh
echo "install.sh: d2lv installed, with OpenCV contrib (headless) for SIFT" >&2
