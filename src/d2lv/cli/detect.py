"""Subcommands of the copy-region detector: ``train-detector`` and ``detect``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from d2lv.cli.common import Subparsers, add_command
from d2lv.detect.params import BoxParams, DetectorParams, TrainingParams
from d2lv.errors import InputError
from d2lv.io.images import DecodeParams


def _train_detector(args: argparse.Namespace) -> None:
    from d2lv.detect import train
    from d2lv.io import manifest
    from d2lv.synth import detector_set

    network, training = DetectorParams.from_args(args), TrainingParams.from_args(args)
    references = manifest.read_manifests(args.manifests)
    if references.empty:
        raise InputError(f"no usable reference images in {' '.join(args.manifests)}: nothing to train on")
    work_dir = Path(args.work_dir)
    data = detector_set.synthesise_training_set(list(references.path), work_dir / "training-set",
                                                training.train_images, args.seed, network.image_size,
                                                progress=not args.quiet)
    initial = training.initial_weights()
    weights = train.train_detector(data, args.out, training.train_epochs, network.image_size,
                                   training.train_batch_size, network.device, args.workers, args.seed, work_dir,
                                   progress=not args.quiet, initial_weights=initial)
    print(f"detector weights {weights}: {training.train_epochs} epochs from {initial or 'scratch'} on "
          f"{training.train_images} images "
          f"synthesised from {len(references)} references", file=sys.stderr)


def _detect(args: argparse.Namespace) -> None:
    from d2lv.detect import boxes
    from d2lv.io import manifest, tables

    network, rule = DetectorParams.from_args(args), BoxParams.from_args(args)
    usable = manifest.read_manifest(args.manifest)
    config_dir = args.config_dir or Path(args.crops_dir).resolve().parent / "ultralytics-config"
    detector = boxes.Detector(args.weights, config_dir, rule, network.image_size, network.device, quiet=args.quiet)
    found, crops = boxes.detect(usable, detector, args.crops_dir, progress=not args.quiet,
                                max_pixels=DecodeParams.from_args(args).max_pixels)
    tables.write_table(found, args.out, tables.BOXES)
    tables.write_table(crops, args.crops_manifest, tables.MANIFEST)
    print(f"copy region found in {found.query_id[found.cropped].nunique()} of {found.query_id.nunique()} queries "
          f"({len(crops)} crops)", file=sys.stderr)


def register(sub: Subparsers) -> None:
    p = add_command(sub, "train-detector", _train_detector,
                    "train the copy-region detector (YOLOv5u, offline; by default going on from the shipped one) on "
                    "images synthesised from the references: photos pasted onto others, into screenshots, under meme "
                    "captions or inside borders")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="reference manifests .parquet")
    p.add_argument("-o", "--out", required=True, help="weights .pt (use it as detect.weights)")
    p.add_argument("--work-dir", required=True, help="folder for the synthesised training set (training-set/), "
                   "the Ultralytics run (runs/detector/) and its settings (ultralytics-config/)")
    p.add_argument("--seed", type=int, default=0, help="seeds the synthesised set and the training")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes")
    TrainingParams.add_arguments(p)
    DetectorParams.add_arguments(p)

    p = add_command(sub, "detect", _detect, "find the copy region of every usable query of a manifest with the "
                    "trained detector and write it as a lossless crop")
    p.add_argument("manifest", help="query manifest .parquet")
    p.add_argument("--weights", required=True, help="detector weights .pt from `d2lv train-detector` "
                   "(config key detect.weights)")
    p.add_argument("-o", "--out", required=True, help="boxes .parquet: a row per kept box (one without a box)")
    p.add_argument("--crops-manifest", required=True, help="manifest .parquet of the crops (their crop ids)")
    p.add_argument("--crops-dir", required=True, help="folder for the crops: <query id>.png, <query id>/2.png, ...")
    p.add_argument("--config-dir", default="", help="folder for Ultralytics' settings (default: "
                   "ultralytics-config/ next to the crops folder)")
    BoxParams.add_arguments(p)
    DetectorParams.add_arguments(p)
    DecodeParams.add_arguments(p)
