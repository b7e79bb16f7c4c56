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
version="$("$python" -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python-headless"))')"
"$python" -m pip uninstall -y opencv-python opencv-python-headless opencv-contrib-python
"$python" -m pip install --force-reinstall --no-deps "opencv-contrib-python-headless==$version"
if ! "$python" -c "import cv2; cv2.xfeatures2d; cv2.SIFT_create()"; then
  echo "install.sh: OpenCV lacks SIFT (cv2.xfeatures2d) even after reinstalling" \
    "opencv-contrib-python-headless==$version; run '$python -m pip list | grep -i opencv' and uninstall" \
    "every opencv package but that one, then rerun this script" >&2
  exit 1
fi
echo "install.sh: d2lv installed; OpenCV $version (contrib, headless) with SIFT" >&2
