# The run's plan (d2lv.workflow.Plan): sets, shards, query views and the files each rule reads, built once
# from the config. Rules read it; the input functions below only hand it their wildcards.

import json

from d2lv import workflow as d2lv_workflow
from d2lv.bench.params import BaselineParams, CnnBaselineParams
from d2lv.descriptor.params import (
    BackboneParams,
    BackgroundParams,
    CheckpointParams,
    HeadParams,
    RegionParams,
    SearchParams,
    TrainParams,
    WhiteningParams,
)
from d2lv.detect.params import BoxParams, DetectorParams, TrainingParams
from d2lv.merge.params import CalibrationParams, FitParams, MergeParams, OutputParams
from d2lv.io.images import DecodeParams
from d2lv.pdq.params import PdqParams
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
from d2lv.report.params import ReportParams

PLAN = d2lv_workflow.Plan.from_config(config)
PLAN.write_shard_lists()
RESULTS = PLAN.results
WORK = PLAN.work
LOGS = PLAN.logs


wildcard_constraints:
    **PLAN.wildcard_constraints(),


def shard_list(wildcards):
    return PLAN.shard_list(wildcards.set, wildcards.shard)


def shard_stamp(wildcards):
    return PLAN.shard_stamp(wildcards.set, wildcards.shard)


def made_by(wildcards):
    return PLAN.made_by(wildcards.set)


def query_crops(wildcards):
    return PLAN.query_crops(wildcards.set, wildcards.shard)
