#!/usr/bin/env bash
# Fetch the raster wallpapers and artwork of three Debian packages into one flat folder, for
# `d2lv bench make-hard --wallpapers OUT_DIR`:
#   bash benchmarks/fetch-wallpapers.sh OUT_DIR
# Packages: desktop-base, sway-backgrounds, xfdesktop4-data (`apt-get download`, no install, no root
# needed beyond a readable apt cache). Every PNG/JPEG whose short side is at least 256 px is copied
# as PACKAGE__PATH_WITH_UNDERSCORES.ext; SVGs and smaller images are skipped. The images keep their
# packages' licences: write them outside the repository (e.g. /tmp/wallpapers), never commit them.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$(realpath -m "$1")
packages=(desktop-base sway-backgrounds xfdesktop4-data)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
cd "$work"
apt-get download "${packages[@]}"
for package in "${packages[@]}"; do
    mkdir -p "tree/$package"
    dpkg-deb -x "$package"_*.deb "tree/$package"
done
# One line per kept image: SOURCE<TAB>NAME (the short-side check needs Pillow, which d2lv depends on).
find tree -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | python3 -c '
import sys
from pathlib import Path
from PIL import Image

MIN_SHORT_SIDE = 256
for source in sorted(sys.stdin.read().split("\0")[:-1]):
    with Image.open(source) as img:
        if min(img.size) < MIN_SHORT_SIDE:
            continue
    package, *rest = Path(source).relative_to("tree").parts
    print(source, package + "__" + "_".join(rest), sep="\t")
' | while IFS=$'\t' read -r source name; do
    cp "$source" "$out/$name"
done
echo "$(find "$out" -maxdepth 1 -type f | wc -l) images in $out" >&2
