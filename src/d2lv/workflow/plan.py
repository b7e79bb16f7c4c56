"""The plan of a run: which sets, shards and query views exist, and which files each rule reads.

:class:`Plan` is built once, from the config, when the Snakefile is parsed; the rules only read it.
Sets are the user's queries and references (and a background folder), plus the calibration copies
and their near-duplicate pseudo-references when the merge is calibrated. A query set is searched in
each of its *views*: the whole queries, and their crops to the detected copy region.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d2lv.configuration import RunParams
from d2lv.descriptor.params import CheckpointParams, DescriptorStageParams, HeadParams
from d2lv.detect.params import DetectStageParams, TrainingParams, detector_weights
from d2lv.io import isc
from d2lv.io.images import FolderListing
from d2lv.io.paths import write_path_list, write_refusal_list
from d2lv.merge.params import CalibrationParams, MergeParams
from d2lv.pdq.params import PdqStageParams
from d2lv.synth import demo, layout
from d2lv.workflow.sets import fit_shards, is_demo_set, list_set, shard_plan

#: The user's query set, and the crops view's suffix.
QUERIES = "queries"
CROPS = "_crops"


@dataclass(frozen=True)
class Plan:
    """Everything the rules need to know before a job runs: sets, their shards, query views, fitted shards."""

    results: str
    #: set -> its folder (the user's sets, and the folders make_calibration writes)
    folders: dict[str, str]
    #: the user's sets as listed: what is decoded, and what skipped.csv lists with the reason
    listings: dict[str, FolderListing]
    #: set or query view -> shard name -> image paths (a crops view shares its query set's shards)
    shards: dict[str, dict[str, list[str]]]
    query_sets: tuple[str, ...]
    #: query view -> the query set it views
    views: dict[str, str]
    #: the reference shards that models fitted on the references learn from
    fit_shards: tuple[str, ...]
    #: the sets make_calibration writes (empty unless the merge is calibrated)
    made_sets: tuple[str, ...]
    #: set -> a file of the rule that writes its images (make_calibration's, the demo's), for planned sets
    planned_by: dict[str, str]
    merge_mode: str
    detect: bool
    descriptor: bool
    pdq: bool
    ground_truth: str | None
    categories: str | None
    demo_dir: str
    #: the detector's weights file (the user's, the shipped one, or the per-run training's output) and the
    #: weights a per-run training starts from ([] or one file)
    detector: str
    detector_start: list[str]
    #: the descriptor's weights (the per-run training's output, the user's checkpoint, or none) and copy head
    descriptor_checkpoint: list[str]
    descriptor_head: list[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Plan:
        """List the input folders and plan every set (raises :class:`~d2lv.workflow.sets.EmptySetError`)."""
        run = RunParams.from_config(config)
        folders = {"queries": run.queries, "references": run.references}
        descriptor = DescriptorStageParams.from_config(config)
        if descriptor.background:
            folders["background"] = descriptor.background
        demo_dir = run.demo_dir or None
        listings = {name: list_set(folder, name, demo_dir) for name, folder in folders.items()}
        query_shard_size = run.query_shard_size or run.shard_size
        shards = {name: shard_plan(listing.images, query_shard_size if name == QUERIES else run.shard_size)
                  for name, listing in listings.items()}
        merge_mode = MergeParams.from_config(config).mode
        calibration = _calibration_dir(_work_dir(run.results))
        made = _calibration_sets(calibration, CalibrationParams.from_config(config),
                                 run.calibration_shard_size) if merge_mode == "calibrated" else {}
        folders.update({name: folder for name, (folder, _) in made.items()})
        planned_by = {name: f"{run.demo_dir}/{isc.GROUND_TRUTH_FILE}" for name, folder in folders.items()
                      if is_demo_set(folder, name, demo_dir)}
        planned_by.update({name: f"{calibration}/{isc.GROUND_TRUTH_FILE}" for name in made})
        shards.update({name: plan for name, (_, plan) in made.items()})
        query_sets = (QUERIES, *(name for name in made if name == "calibration"))
        detect = DetectStageParams.from_config(config).enabled
        views = {view: qset for qset in query_sets for view in ((qset, qset + CROPS) if detect else (qset,))}
        shards.update({view: shards[qset] for view, qset in views.items()})
        return cls(
            results=run.results, folders=folders, listings=listings, shards=shards, query_sets=query_sets,
            views=views, fit_shards=tuple(fit_shards(shards["references"], run.fit_images)),
            made_sets=tuple(made), planned_by=planned_by, merge_mode=merge_mode, detect=detect,
            descriptor=descriptor.enabled, pdq=PdqStageParams.from_config(config).enabled,
            ground_truth=run.ground_truth or _demo_file(run, isc.GROUND_TRUTH_FILE),
            categories=run.categories or _demo_file(run, isc.CATEGORIES_FILE), demo_dir=run.demo_dir,
            **_model_files(config, _work_dir(run.results)),
        )

    # ------------------------------------------------------------------ where things are

    @property
    def work(self) -> str:
        return _work_dir(self.results)

    @property
    def logs(self) -> str:
        return f"{self.results}/logs"

    @property
    def calibrated(self) -> bool:
        return self.merge_mode == "calibrated"

    @property
    def calibration_dir(self) -> str:
        return _calibration_dir(self.work)

    @property
    def usable_references(self) -> str:
        """The file rule check_references writes once a fitted shard holds a usable reference."""
        return f"{self.work}/usable/references.txt"

    def wildcard_constraints(self) -> dict[str, str]:
        """The values each wildcard of the rules can take."""
        return {"set": "|".join(self.shards), "qset": "|".join(self.query_sets), "view": "|".join(self.views),
                "shard": r"\d+"}

    # ------------------------------------------------------------------ a shard's images

    def shard_list(self, set_name: str, shard: str) -> str:
        """The file that names one shard's images, a line each (:meth:`write_shard_lists`)."""
        return f"{self.work}/shards/{set_name}/{shard}.txt"

    def reference_store_list(self, qset: str) -> str:
        """The file that names the feature stores of every reference shard that ``qset`` is verified against."""
        return f"{self.work}/shards/verified-{qset}.txt"

    def refusal_list(self, set_name: str) -> str:
        """The file that names what the listing of a user's set set aside, with the reason (skipped.csv's)."""
        return f"{self.work}/shards/{set_name}/refused.json"

    def write_shard_lists(self) -> None:
        """Write the path lists the jobs read where they changed (a list's time changes only with its paths):
        each shard's images, which its manifest job decodes (no job lists the folder), what each folder's
        listing set aside, and the reference stores each query set is verified against (one input for
        Snakemake instead of one per shard)."""
        for set_name in self.folders:
            for shard, paths in self.shards[set_name].items():
                write_path_list(self.shard_list(set_name, shard), paths)
        for set_name, listing in self.listings.items():
            write_refusal_list(self.refusal_list(set_name), listing.refused)
        stores = f"{self.work}/features/{{set}}/{{shard}}.h5"
        for qset in self.query_sets:
            write_path_list(self.reference_store_list(qset), self.shard_files(stores, "references")
                            + self.near_files(stores, qset))

    def shard_stamp(self, set_name: str, shard: str) -> str:
        """A digest of the size and time of each of the shard's images: as a rule's param, an image changed in
        place reruns its shard as a changed input would (images are no Snakemake inputs: at a million
        references Snakemake's own check of each input costs minutes). Empty for a set a rule writes, which
        its shards wait for instead (:meth:`made_by`)."""
        if set_name in self.planned_by:
            return ""
        digest = hashlib.sha1()
        for path in self.shards[set_name][shard]:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def made_by(self, set_name: str) -> list[str]:
        """What a shard of ``set_name`` waits for besides its list: the output of the rule that writes its
        images (make_calibration, demo), even when the shard is empty."""
        return [self.planned_by[set_name]] if set_name in self.planned_by else []

    def made_images(self) -> list[str]:
        """Every image make_calibration writes."""
        return [path for name in self.made_sets for shard in self.shards[name].values() for path in shard]

    def demo_images(self) -> list[str]:
        """Every image the demo rule writes."""
        return [str(path) for paths in demo.planned_demo_files(Path(self.demo_dir)).values() for path in paths]

    # ------------------------------------------------------------------ files per shard

    def shard_files(self, pattern: str, set_name: str) -> list[str]:
        """``pattern`` (with ``{set}`` and ``{shard}``) for every shard of ``set_name``."""
        return [_fill(pattern, set=set_name, shard=shard) for shard in self.shards[set_name]]

    def fit_files(self, pattern: str) -> list[str]:
        """``pattern`` (with ``{shard}``) for each reference shard that fitted models learn from (fit_images)."""
        return [_fill(pattern, set="references", shard=shard) for shard in self.fit_shards]

    def near_files(self, pattern: str, qset: str) -> list[str]:
        """``pattern`` for each shard of the near-duplicate pseudo-references that calibration queries (only
        they) are searched against besides the collection."""
        return self.shard_files(pattern, "calibration_near") if qset == "calibration" else []

    def view_files(self, pattern: str, qset: str, shard: str) -> list[str]:
        """``pattern`` (with ``{set}`` and ``{shard}``) for one shard of each query view of ``qset``."""
        return [_fill(pattern, set=view, shard=shard) for view in self.views_of(qset)]

    def views_of(self, qset: str) -> list[str]:
        """The query views of a query set: its queries, and their crops when the detector runs."""
        return [view for view, base in self.views.items() if base == qset]

    def verification_branch(self, view: str) -> str:
        """The merge's name for the verification of a query view: ``local`` (whole queries) or ``local_crop``."""
        return "local" if view in self.query_sets else "local_crop"

    def query_crops(self, set_name: str, shard: str) -> list[str]:
        """A query shard's crops manifest (the global descriptor describes the crop where there is one)."""
        if self.detect and set_name in self.query_sets:
            return [f"{self.work}/manifests/{set_name}{CROPS}/{shard}.parquet"]
        return []

    def candidate_tables(self, qset: str, shard: str) -> list[str]:
        """Every recall branch's candidates of one query shard: the pairs each of its views verifies."""
        return [_fill(pattern, set=qset, shard=shard) for pattern in self._candidates().values() if pattern]

    def merge_inputs(self, qset: str) -> dict[str, list[str]]:
        """What the merge of one query set reads: every branch's candidates, every view's scores, the boxes."""
        inputs = {branch: self.shard_files(pattern, qset) if pattern else []
                  for branch, pattern in self._candidates().items()}
        inputs["scores"] = [f for view in self.views_of(qset)
                            for f in self.shard_files(f"{self.work}/local/{view}/scores/{{shard}}.parquet", qset)]
        inputs["boxes"] = self.shard_files(f"{self.work}/detect/{{set}}/boxes/{{shard}}.parquet", qset) \
            if self.detect else []
        return inputs

    def _candidates(self) -> dict[str, str]:
        """Recall branch (as the merge's inputs name it) -> its candidates' pattern; "" where it does not run."""
        work = self.work
        return {
            "local": f"{work}/local/{{set}}/candidates/{{shard}}.parquet",
            "crop": f"{work}/local/{{set}}{CROPS}/candidates/{{shard}}.parquet" if self.detect else "",
            "global_": f"{work}/descriptor/{{set}}/candidates/{{shard}}.parquet" if self.descriptor else "",
            "pdq": f"{work}/pdq/{{set}}/candidates/{{shard}}.parquet" if self.pdq else "",
        }

    def collection_inputs(self) -> dict[str, list[str]]:
        """What ``d2lv query`` and ``d2lv serve`` read of the run, by the names of
        :data:`d2lv.query.collection.FILE_NAMES` (each empty where the run does not have it)."""
        work, index = self.work, f"{self.work}/local/index"
        background = "background" in self.shards and self.descriptor
        return {
            "index": [f"{index}/merged.faiss"],
            "lists": [f"{index}/merged.ivfdata"],
            "catalogue": [f"{index}/references.parquet"],
            "stores": self.shard_files(f"{work}/features/{{set}}/{{shard}}.h5", "references"),
            "manifests": self.shard_files(f"{work}/manifests/{{set}}/{{shard}}.parquet", "references"),
            "descriptors": [f"{work}/descriptor/references.h5"] if self.descriptor else [],
            "whitening": [f"{work}/descriptor/whitening.h5"] if self.descriptor else [],
            "background": self.shard_files(f"{work}/descriptor/whitened/{{set}}/{{shard}}.h5", "background")
            if background else [],
            "pdq": [f"{work}/pdq/references.h5"] if self.pdq else [],
            "model": [f"{work}/merge/model.json"] if self.calibrated else [],
            "detector": [self.detector] if self.detect else [],
            "checkpoint": self.descriptor_checkpoint if self.descriptor else [],
            "head": self.descriptor_head if self.descriptor else [],
        }

    def final_outputs(self) -> list[str]:
        """What a run delivers (the default target)."""
        outputs = [f"{self.results}/matches.csv", f"{self.results}/skipped.csv", f"{self.results}/report/metrics.csv",
                   f"{self.results}/collection.json"]
        if self.descriptor:
            outputs.append(f"{self.results}/global_descriptors.h5")
        if self.pdq:
            outputs.append(f"{self.results}/pdq_hashes.csv")
        if self.ground_truth:
            outputs.append(f"{self.results}/metrics.json")
        return outputs


def _model_files(config: Mapping[str, Any], work: str) -> dict[str, Any]:
    """The weights files the models are read from: shipped, the user's, or trained by the run."""
    detect, descriptor = DetectStageParams.from_config(config), DescriptorStageParams.from_config(config)
    start, head = TrainingParams.from_config(config).initial_weights(), HeadParams.from_config(config).head_file()
    checkpoint = CheckpointParams.from_config(config).checkpoint
    return {
        "detector": detector_weights(detect.weights, detect.train, trained_detector(work)),
        "detector_start": [str(start)] if start else [],
        "descriptor_checkpoint": [trained_descriptor(work)] if descriptor.train else [checkpoint] if checkpoint else [],
        "descriptor_head": [str(head)] if head else [],
    }


def _work_dir(results: str) -> str:
    """Where a run's intermediate files go."""
    return f"{results}/work"


def _calibration_dir(work: str) -> str:
    """Where make_calibration writes the calibration copies."""
    return f"{work}/calibration"


def trained_detector(work: str) -> str:
    """Where rule train_detector writes the per-run detector."""
    return f"{work}/detect/detector.pt"


def trained_descriptor(work: str) -> str:
    """Where rule train_descriptor writes the fine-tuned descriptor."""
    return f"{work}/descriptor/descriptor.pt"


def _calibration_sets(folder: str, params: CalibrationParams,
                      shard_size: int) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Set -> (folder, shards) of the sets make_calibration writes: the copies, and the pseudo-references only
    calibration queries are searched against (near-duplicate negatives)."""
    copies = layout.planned_calibration_files(Path(folder), params.queries)
    near = layout.planned_near_files(Path(folder), params.queries, params.near_duplicates, params.graphics)
    return {"calibration": (f"{folder}/queries", shard_plan(copies, shard_size)),
            "calibration_near": (f"{folder}/{layout.NEAR_DIR}", shard_plan(near, shard_size))}


def _fill(pattern: str, **values: str) -> str:
    """``pattern`` with each ``{name}`` replaced (a path may hold other braces, which stay)."""
    for name, value in values.items():
        pattern = pattern.replace(f"{{{name}}}", value)
    return pattern


def _demo_file(run: RunParams, filename: str) -> str | None:
    """A file of the demo set, when the queries are the demo's."""
    return str(Path(run.demo_dir) / filename) if is_demo_set(run.queries, QUERIES, run.demo_dir) else None
