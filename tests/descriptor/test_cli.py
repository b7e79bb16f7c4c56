"""The global branch's subcommands accept the option strings they always have, and the workflow's flags."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from d2lv import cli, workflow
from d2lv.descriptor.params import BackboneParams, CheckpointParams, TrainParams

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())


def parse(line: str) -> dict[str, object]:
    args = vars(cli.build_parser().parse_args(shlex.split(line)))
    return {k: v for k, v in args.items() if k not in ("handler", "command", "quiet")}


def test_todays_option_strings_are_still_accepted():
    assert parse("descriptor-extract m --set background -o o --crops c --backbone b --checkpoint k --device cpu "
                 "--image-size 0 --batch-size 4 --threads 2 --max-pixels 5") == {
        "manifest": "m", "set": "background", "out": "o", "crops": "c", "backbone": "b", "checkpoint": "k",
        "device": "cpu", "image_size": 0, "batch_size": 4, "threads": 2, "max_pixels": 5, "regions": 0,
        "head": ""}
    assert parse("train-descriptor m1 m2 -o o --backbone b --checkpoint k --dim 3 --steps 4 --batch-size 5 "
                 "--lr 0.1 --temperature 0.2 --koleo-weight 1 --image-size 64 --device cpu --seed 3 --workers 0 "
                 "--threads 1 --max-pixels 7 --log-every 9") == {
        "manifests": ["m1", "m2"], "out": "o", "backbone": "b", "checkpoint": "k", "dim": 3, "steps": 4,
        "batch_size": 5, "lr": 0.1, "temperature": 0.2, "koleo_weight": 1.0, "image_size": 64, "device": "cpu",
        "seed": 3, "workers": 0, "threads": 1, "max_pixels": 7, "log_every": 9}
    assert parse("descriptor-whitening r1 r2 -o o --dim 8 --shrinkage 0.2") == {
        "references": ["r1", "r2"], "out": "o", "dim": 8, "shrinkage": 0.2}
    assert parse("descriptor-search --queries q --references r --whitening w --background b1 b2 --background-k 3 "
                 "--background-beta 0.5 -o o --topk 4") == {
        "queries": ["q"], "references": ["r"], "whitening": "w", "background": ["b1", "b2"], "background_k": 3,
        "background_beta": 0.5, "out": "o", "topk": 4}
    assert parse("descriptor-export --queries q --references r --whitening w -o o") == {
        "queries": ["q"], "references": ["r"], "whitening": "w", "out": "o"}


def test_training_flags_of_the_workflow_are_the_config_values():
    config = {**CONFIG, "descriptor": {**CONFIG["descriptor"], "train_steps": 7, "train_lr": 0.0003, "checkpoint": ""}}
    flags = workflow.flags(config, BackboneParams, CheckpointParams, TrainParams)
    args = parse(f"train-descriptor m -o o {flags}")
    assert (args["steps"], args["lr"], args["batch_size"], args["checkpoint"]) == (7, 0.0003, 64, "")
    assert (args["backbone"], args["image_size"], args["dim"]) == ("tf_efficientnet_lite0", 224, 256)
