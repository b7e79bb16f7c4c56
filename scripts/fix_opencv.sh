#!/usr/bin/env bash
# Leave opencv-contrib-python-headless as the only wheel that provides cv2 (see install.sh).
# Also the post-deploy step of the workflow's conda environment (envs/d2lv.post-deploy.sh).
set -euo pipefail
python="${PYTHON:-python3}"
version="$("$python" -c 'import importlib.metadata as m; print(m.version("opencv-contrib-python-headless"))')"
"$python" -m pip uninstall -y opencv-python opencv-python-headless opencv-contrib-python
"$python" -m pip install --force-reinstall --no-deps "opencv-contrib-python-headless==$version"
if ! "$python" -c "import cv2; cv2.xfeatures2d; cv2.SIFT_create()"; then
  echo "fix_opencv.sh: OpenCV lacks SIFT (cv2.xfeatures2d) even after reinstalling" \
    "opencv-contrib-python-headless==$version; run '$python -m pip list | grep -i opencv' and uninstall" \
    "every opencv package but that one, then rerun this script" >&2
  exit 1
fi
echo "fix_opencv.sh: OpenCV $version (contrib, headless) with SIFT" >&2
