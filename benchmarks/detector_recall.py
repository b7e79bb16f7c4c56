"""Box recall of a copy-region detector on a benchmark's queries, per recipe family.

    python benchmarks/detector_recall.py BENCH [--weights W.pt]

BENCH is a ``d2lv bench make`` folder. Detects the copy region of every query with ``--weights``
(default: the shipped detector) at config.yaml's settings and prints, per family, the share of placed
copies (the photo inside a larger picture) whose first box (box_recall) or any cropped box
(crop_recall) has IoU >= 0.5 with the true one, and how many full-frame queries were cropped by
mistake. Measure the shipped detector only on photos it was not trained on: build BENCH from
../shared/data/imagenet-sample and bsds500/val and test, e.g.

    d2lv bench make ../shared/data/imagenet-sample ../shared/data/bsds500/val ../shared/data/bsds500/test \\
        -o resources/detector-eval --references 400 --copies 400 --noncopies 200 --hard-negatives 0 --seed 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from d2lv.bench.markdown import markdown_table
from d2lv.detect.boxes import detect
from d2lv.detect.params import SHIPPED_WEIGHTS, BoxParams, DetectorParams
from d2lv.evaluation.metrics import detector_recall
from d2lv.io import isc, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path, help="a `d2lv bench make` folder")
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    args = parser.parse_args()
    config = yaml.safe_load(Path(__file__).parents[1].joinpath("config.yaml").read_text())
    box, network = BoxParams.from_config(config), DetectorParams.from_config(config)
    queries = manifest.build_manifest(sorted((args.bench / "queries").iterdir()), progress=False)
    with tempfile.TemporaryDirectory() as work:
        boxes, _ = detect(queries, args.weights, Path(work) / "crops", box, network.image_size, network.device,
                          config_dir=Path(work) / "ultralytics")
    table = detector_recall(boxes, isc.read_id_csv(args.bench / "categories.csv"))
    print(markdown_table(table))


if __name__ == "__main__":
    main()
