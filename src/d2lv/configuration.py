"""The workflow's configuration, generated from the option groups.

Every config key is a field of one option group (:class:`d2lv.options.Options`), which declares its
type, default, bounds and help once. From them ``d2lv config`` writes the JSON schema the Snakefile
validates against (``workflow/schemas/config.schema.yaml``) and the commented ``config.yaml``; a test
fails when the committed files differ from what it writes. :data:`SECTIONS` orders the groups as the
files show them; the top-level keys of a run are :class:`RunParams`'.
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

from d2lv.bench.params import BaselineParams, CnnBaselineParams
from d2lv.descriptor.params import (
    BackboneParams,
    BackgroundParams,
    CheckpointParams,
    DescriptorStageParams,
    HeadParams,
    RegionParams,
    SearchParams,
    TrainParams,
    WhiteningParams,
)
from d2lv.detect.params import BoxParams, DetectorParams, DetectStageParams, TrainingParams
from d2lv.io.images import DecodeParams
from d2lv.local.params import (
    CandidateParams,
    IndexDevice,
    IndexParams,
    RecallParams,
    SiftParams,
    SingleCandidateRule,
    ThreadParams,
    UsableParams,
    VerifyParams,
)
from d2lv.merge.params import CalibrationParams, FitParams, MergeParams, OutputParams
from d2lv.options import BOUNDS, Options, option
from d2lv.pdq.params import PdqParams, PdqStageParams
from d2lv.report.params import ReportParams

SCHEMA_PATH = "workflow/schemas/config.schema.yaml"
CONFIG_PATH = "config.yaml"


@dataclass(frozen=True)
class RunParams(Options):
    """The public contract (the folders a run reads and writes) and how its work is cut into shards."""

    queries: str = option("resources/demo/queries", "folder of query images, searched recursively")
    references: str = option("resources/demo/references", "folder of reference images, searched recursively")
    results: str = option("results/demo", "matches.csv, skipped.csv and metrics.json land here (intermediate "
                          "files in its work/ and logs/)")
    ground_truth: str = option("", "CSV query_id,reference_id (an empty reference_id: a query that copies nothing) "
                               "for metrics.json; \"\" = none (the demo set uses its own)")
    categories: str = option("", "categories.csv of a `d2lv bench make` set, for recall@1 per recipe family; "
                             "\"\" = none (the demo set uses its own)")
    shard_size: int = option(500, "reference or query images per shard (the unit of parallel work)", minimum=1)
    query_shard_size: int = option(0, "query images per shard, when they want shards of their own size; "
                                   "0 = shard_size", minimum=0)
    calibration_shard_size: int = option(200, "calibration copies (and their pseudo-references) per shard, "
                                         "whatever shard_size is: a few hundred copies need no finer cut",
                                         minimum=1)
    fit_images: int = option(2000, "models fitted on the references (index quantisers, whitening, calibration "
                             "copies, a per-run detector) learn from the first reference shards that hold at least "
                             "this many images: a random sample, as shards are drawn by hash; adding a reference to "
                             "those shards refits them", minimum=1)
    demo_dir: str = option("resources/demo", "`d2lv demo` builds the demo set here when the inputs point into it")


@dataclass(frozen=True)
class Section:
    """One config section (``""``: the top level) as the files show it."""

    name: str
    title: str  # config.yaml's banner
    description: str  # the schema's
    groups: tuple[type[Options], ...]


SECTIONS: tuple[Section, ...] = (
    Section("", "the public contract and sharding", "", (RunParams, DecodeParams)),
    Section("local", "local stage: SIFT features, local recall, verification",
            "The local stage: RootSIFT features; local recall, in which each query's descriptors vote for the "
            "references of their nearest neighbours in a faiss index; and the verification of every branch's "
            "candidates.",
            (IndexParams, IndexDevice, RecallParams, CandidateParams, ThreadParams)),
    Section("local.sift", "SIFT features",
            "SIFT local feature extraction, shared by local recall and local verification.",
            (SiftParams, UsableParams)),
    Section("local.single", "the original single-candidate rule",
            "Thresholds of the single-candidate rule, used when local.mode is single.", (SingleCandidateRule,)),
    Section("local.verify", "verification",
            "Local verification of every candidate pair by SIFT matching and a RANSAC-fitted geometric model.",
            (VerifyParams,)),
    Section("descriptor", "descriptor stage: global descriptors, global recall",
            "The descriptor stage: CNN descriptors, whitened and searched with faiss (the global recall branch, "
            "whose top candidates are verified locally).",
            (DescriptorStageParams, BackboneParams, CheckpointParams, HeadParams, TrainParams, RegionParams,
             WhiteningParams, SearchParams, BackgroundParams)),
    Section("pdq", "hash recall (PDQ)",
            "Hash recall, in which each query view's PDQ hashes (8 dihedral variants) find the nearest references "
            "by Hamming distance, verified locally; it finds mild copies of smooth images that yield too few "
            "keypoints.",
            (PdqStageParams, PdqParams)),
    Section("detect", "copy-region detector (YOLOv5u, ultralytics)",
            "Copy-region detector (YOLOv5u, ultralytics) that crops each query to the region copied from a "
            "reference, for the crop branch.",
            (DetectStageParams, DetectorParams, TrainingParams, BoxParams)),
    Section("merge", "merge: one score per pair, matches.csv",
            "Merging of the branches' verified candidates into one score per query-reference pair, and the "
            "matches.csv it writes.",
            (MergeParams, FitParams, CalibrationParams, OutputParams)),
    Section("report", "report (`snakemake --report report.html`)",
            "The HTML report built by `snakemake --report report.html`.", (ReportParams,)),
    Section("bench", "benchmark (`snakemake bench`, `d2lv bench run`)",
            "Baselines run beside the pipeline by the benchmark (`snakemake bench`, `d2lv bench run`).",
            (BaselineParams, CnnBaselineParams)),
)

_HEADER = """\
d2lv configuration: every key with its default. Generated by `d2lv config` from the option groups
(src/d2lv/**/params.py, d2lv.configuration): change a default there, not here.
Override any key on the command line, e.g.
  snakemake --cores 8 --config queries=q/ references=r/ results=out/ ground_truth=gt.csv"""
_SCHEMA_HEADER = """\
The d2lv workflow configuration, validated by the Snakefile (`validate(config, ...)`), which also fills in
each `default` below for a key a config file leaves out. Generated by `d2lv config` from the option groups,
like config.yaml (the commented defaults): change them there. Every object is closed
(`additionalProperties: false`): a misspelled key is an error."""
_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_COMMENT_COLUMN = 39
_WIDTH = 120


def options() -> list[tuple[str, type[Options], dataclasses.Field]]:
    """Every config key, in the files' order, with its group and field."""
    return [option for section in SECTIONS for option in _section_options(section)]


def _section_options(section: Section) -> list[tuple[str, type[Options], dataclasses.Field]]:
    return [(group.config_key(field), group, field) for group in section.groups for field in dataclasses.fields(group)]


def _help(field: dataclasses.Field) -> str:
    return field.metadata["help"].replace("%%", "%")  # argparse's escape


def _property(field: dataclasses.Field) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": _JSON_TYPES[type(field.default)]}
    if field.metadata.get("choices") is not None:
        prop["enum"] = list(field.metadata["choices"])
    prop.update({BOUNDS[name].schema_keyword: bound for name, bound in field.metadata.get("bounds", {}).items()})
    prop["description"] = _help(field)
    prop["default"] = field.default
    return prop


def _object(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": False, "properties": {}}


def json_schema() -> dict[str, Any]:
    """The workflow's config schema (JSON Schema 2020-12, as a dict)."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "d2lv workflow configuration",
              **_object("Settings of the d2lv image copy detection workflow; config.yaml holds the defaults, any "
                        "key can be overridden with --configfile or --config.")}
    objects = {"": schema}
    for section in SECTIONS:
        if section.name:
            parent, _, name = section.name.rpartition(".")
            objects[section.name] = objects[parent]["properties"][name] = _object(section.description)
        for key, _, field in _section_options(section):
            parent, _, name = key.rpartition(".")
            objects[parent]["properties"][name] = _property(field)
    for node in reversed(objects.values()):  # a nested section's default before its parent's
        node["required"] = list(node["properties"])
        if node is not schema:
            node["default"] = {name: sub["default"] for name, sub in node["properties"].items()}
    return schema


def schema_yaml() -> str:
    """The text of ``workflow/schemas/config.schema.yaml``."""
    body = yaml.safe_dump(json_schema(), sort_keys=False, width=_WIDTH, allow_unicode=True, default_flow_style=False)
    return _comment(_SCHEMA_HEADER) + body


def config_yaml() -> str:
    """The text of ``config.yaml``: every key at its default, with its help as a comment."""
    lines = _comment(_HEADER).splitlines()
    for section in SECTIONS:
        nested = section.name.count(".")  # local.single: 1, under local
        if not nested:
            lines += ["", f"# --- {section.title} ".ljust(_WIDTH - 20, "-")]
        else:
            lines.append("  " * nested + f"# {section.title}")
        if section.name:
            lines.append("  " * nested + f"{section.name.rpartition('.')[2]}:")
        indent = "  " * (nested + bool(section.name))
        for key, _, field in _section_options(section):
            lines += _config_line(indent + key.rpartition(".")[2], field.default, _help(field))
    return "\n".join(lines) + "\n"


def _config_line(key: str, value: Any, help_text: str) -> list[str]:
    text = f"{key}: {_scalar(value)}"
    column = max(_COMMENT_COLUMN, len(text) + 1)  # where "#" goes
    comment = textwrap.wrap(help_text, _WIDTH - column - 2) or [""]
    return [f"{text.ljust(column - 1)} # {comment[0]}"] + [" " * (column - 1) + f" # {line}" for line in comment[1:]]


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).removesuffix("\n...\n").strip()


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())

