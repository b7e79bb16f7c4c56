import os
import shlex

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
from d2lv.detect.params import BoxParams, DetectorParams, TrainingParams, detector_weights
from d2lv.fusion.params import CalibrationParams, FitParams, MergeParams, OutputParams
from d2lv.io.images import DecodeParams
from d2lv.pdq.params import PdqParams
from d2lv.local.params import (
    CandidateParams,
    IndexDevice,
    IndexParams,
    RecallParams,
    SiftParams,
    SingleCandidateRule,
    UsableParams,
    VerifyParams,
)
from d2lv.report.params import ReportParams

RESULTS = config["results"]
WORK = f"{RESULTS}/work"
LOGS = f"{RESULTS}/logs"
SET_FOLDERS = {"queries": config["queries"], "references": config["references"]}
if config["global"]["background"]:
    SET_FOLDERS["background"] = config["global"]["background"]
GLOBAL_ENABLED = config["global"]["enabled"]
PDQ_ENABLED = config["pdq"]["enabled"]
DETECT = config["detect"]
DETECT_ENABLED = DETECT["enabled"]
MERGE = config["merge"]
CALIBRATED = MERGE["mode"] == "calibrated"
CALIBRATION_DIR = f"{WORK}/calibration"
GROUND_TRUTH = d2lv_workflow.ground_truth(config)
CATEGORIES = d2lv_workflow.categories(config)

# Query sets may be cut into shards of their own size (query_shard_size; 0: shard_size).
QUERY_SHARD_SIZE = config["query_shard_size"] or config["shard_size"]
# Every file of each set: the images to shard, and the rest, which skipped.csv lists with the reason.
LISTINGS = {name: d2lv_workflow.list_set(folder, name, config.get("demo_dir")) for name, folder in SET_FOLDERS.items()}
PLANS = {
    name: d2lv_workflow.shard_plan(listing, QUERY_SHARD_SIZE if name == "queries" else config["shard_size"])
    for name, listing in LISTINGS.items()
}
# The reference shards that the models fitted on the references learn from, and the check (rule
# check_references) that they hold a usable image: every fitting rule takes it as an input, so none starts on
# references that all failed. It reads only those shards' manifests, which the fitting rules depend on anyway:
# adding a reference elsewhere reruns neither the check nor any fit (a check on skipped.csv, all shards, would).
FIT_SHARDS = d2lv_workflow.fit_shards(PLANS["references"], config["fit_images"])
USABLE_REFERENCES = f"{WORK}/usable/references.txt"
# Query sets: the user's queries, and the calibration copies the merge is fitted on.
QUERY_SETS = ["queries"]
if CALIBRATED:
    SET_FOLDERS["calibration"] = f"{CALIBRATION_DIR}/queries"
    PLANS["calibration"] = d2lv_workflow.calibration_plan(
        CALIBRATION_DIR, MERGE["calibration_queries"], QUERY_SHARD_SIZE
    )
    QUERY_SETS.append("calibration")
    # Sets that make_calibration writes: their shards wait for it, even when empty.
    CALIBRATION_SETS = ("calibration", "calibration_near")
    # ... and the pseudo-references only calibration queries are searched against (near-duplicate negatives)
    SET_FOLDERS["calibration_near"] = f"{CALIBRATION_DIR}/near"
    PLANS["calibration_near"] = d2lv_workflow.near_plan(
        CALIBRATION_DIR,
        MERGE["calibration_queries"],
        MERGE["near_duplicates"],
        MERGE["calibration_graphics"],
        config["shard_size"],
    )
# Query views: each query set, and its crops to the detected copy region (same shards).
VIEWS = {qset: qset for qset in QUERY_SETS}
if DETECT_ENABLED:
    for qset in QUERY_SETS:
        PLANS[f"{qset}_crops"] = PLANS[qset]
        VIEWS[f"{qset}_crops"] = qset


wildcard_constraints:
    set="|".join(PLANS),
    qset="|".join(QUERY_SETS),
    view="|".join(VIEWS),
    shard=r"\d+",


def shard_images(wildcards):
    """One shard's images that Snakemake can track as inputs (the others: `untracked_images`); a calibration
    shard also waits for the copies to be made (even if empty)."""
    images = d2lv_workflow.trackable(PLANS[wildcards.set][wildcards.shard])
    made = CALIBRATED and wildcards.set in CALIBRATION_SETS
    return [*images, f"{CALIBRATION_DIR}/ground_truth.csv"] if made else images


def untracked_images(wildcards):
    """Size and time of the shard's images whose names Snakemake would read as wildcards (`a{b}.jpg`)."""
    return d2lv_workflow.untracked_stamps(PLANS[wildcards.set][wildcards.shard])


def searched_stores(pattern, qset):
    """``pattern`` (``{set}``, ``{shard}``) for every reference shard that the query set ``qset`` is searched
    against: the collection, and for calibration queries also the pseudo-references."""
    extra = shard_files(pattern, "calibration_near") if qset == "calibration" else []
    return shard_files(pattern, "references") + extra


def fit_files(pattern):
    """``pattern`` (with ``{shard}``) for each reference shard that fitted models learn from (fit_images)."""
    return expand(pattern, shard=FIT_SHARDS)


def shard_files(pattern, set_name):
    return expand(pattern, set=set_name, shard=list(PLANS[set_name]))


def views_of(qset):
    """The query views of a query set: its queries, and their crops when the detector runs."""
    return [view for view, base in VIEWS.items() if base == qset]


def candidate_tables(qset, shard):
    """Every branch's candidates of one query shard: the pairs each of its views verifies."""
    tables = [f"{WORK}/local/{qset}/candidates/{shard}.parquet"]
    if DETECT_ENABLED:
        tables.append(f"{WORK}/local/{qset}_crops/candidates/{shard}.parquet")
    if GLOBAL_ENABLED:
        tables.append(f"{WORK}/global/{qset}/candidates/{shard}.parquet")
    if PDQ_ENABLED:
        tables.append(f"{WORK}/pdq/{qset}/candidates/{shard}.parquet")
    return tables


def query_crops(wildcards):
    """A query shard's crops manifest: the global descriptor describes the crop where there is one."""
    if DETECT_ENABLED and wildcards.set in QUERY_SETS:
        return f"{WORK}/manifests/{wildcards.set}_crops/{wildcards.shard}.parquet"
    return []


def merge_inputs(qset):
    """What the merge of one query set reads: candidates of every branch, scores of every view, boxes."""
    views = views_of(qset)
    per_shard = lambda pattern: shard_files(pattern, qset)
    return {
        "local": per_shard(f"{WORK}/local/{qset}/candidates/{{shard}}.parquet"),
        "crop": per_shard(f"{WORK}/local/{qset}_crops/candidates/{{shard}}.parquet") if DETECT_ENABLED else [],
        "global_": per_shard(f"{WORK}/global/{qset}/candidates/{{shard}}.parquet") if GLOBAL_ENABLED else [],
        "pdq": per_shard(f"{WORK}/pdq/{qset}/candidates/{{shard}}.parquet") if PDQ_ENABLED else [],
        "scores": [f for v in views for f in per_shard(f"{WORK}/local/{v}/scores/{{shard}}.parquet")],
        "boxes": per_shard(f"{WORK}/detect/{qset}/boxes/{{shard}}.parquet") if DETECT_ENABLED else [],
    }


def final_outputs():
    outputs = [f"{RESULTS}/matches.csv", f"{RESULTS}/skipped.csv", f"{RESULTS}/report/metrics.csv"]
    if GLOBAL_ENABLED:
        outputs.append(f"{RESULTS}/global_descriptors.h5")
    if PDQ_ENABLED:
        outputs.append(f"{RESULTS}/pdq_hashes.csv")
    if GROUND_TRUTH:
        outputs.append(f"{RESULTS}/metrics.json")
    return outputs


#: The workflow steps each benchmark system pays for: rules, or `rule/view` (one query view's share of a
#: rule); the merged systems pay for every rule, calibration and detector training included. The Snakefile
#: checks at parse time that each names a rule.
_INDEX_STEPS = "local_train,local_add,local_merge"
_LOCAL_STEPS = f"manifest,sift,{_INDEX_STEPS},local_recall/queries"
_HASH_STEPS = "manifest,pdq_hash/queries,pdq_hash/references"
BENCH_STEPS = {
    "PDQ": f"{_HASH_STEPS},bench_pdq_match",
    "CNN": "manifest,bench_cnn_extract,bench_cnn_search",
    "local votes": _LOCAL_STEPS,
    "local": f"{_LOCAL_STEPS},verify/queries",
    "crop": f"manifest,sift,train_detector,detect/queries,{_INDEX_STEPS},local_recall/queries_crops,verify/queries_crops",
    "global": "manifest,global_extract,global_whitening,global_search/queries",
    "hash": f"{_HASH_STEPS},pdq_hash/queries_crops,train_detector,detect/queries,pdq_search/queries",
    "merged": f"manifest,sift,{_INDEX_STEPS},local_recall,verify,global_extract,global_whitening,global_search,"
    "pdq_hash,pdq_search,train_detector,detect,make_calibration,fit_merge,matches",
}


def report_systems(wildcards, input):
    """`d2lv bench report` arguments: each system's predictions, workflow steps (BENCH_STEPS) and stored index."""
    index = [*input.local_index, *input.local_features]
    per_shard = lambda files: os.path.join(os.path.dirname(files[0]), "*.parquet")
    systems = [
        ("PDQ", input.pdq, BENCH_STEPS["PDQ"], input.pdq_store),
        (
            "CNN global (ImageNet GeM)",
            f"{input.cnn}#similarity",
            BENCH_STEPS["CNN"],
            input.cnn_store,
        ),
        (
            "d2lv local votes (recall only)",
            f"{per_shard(input.local_candidates)}#votes",
            BENCH_STEPS["local votes"],
            input.local_index,
        ),
        ("d2lv local branch", f"{input.matches}#verify_local_score@local_votes", BENCH_STEPS["local"], index),
    ]
    if DETECT_ENABLED:
        systems.append(
            (
                "d2lv crop branch",
                f"{input.matches}#verify_local_crop_score@crop_votes",
                BENCH_STEPS["crop"],
                index,
            )
        )
    if GLOBAL_ENABLED:
        systems.append(
            (
                "d2lv global branch",
                f"{per_shard(input.global_candidates)}#similarity",
                BENCH_STEPS["global"],
                input.global_store,
            )
        )
    if PDQ_ENABLED:
        systems.append(
            ("d2lv hash branch", f"{per_shard(input.pdq_candidates)}#score", BENCH_STEPS["hash"], input.pdq_store)
        )
    stored = [*index, *input.global_store, *(input.pdq_store if PDQ_ENABLED else [])]
    if CALIBRATED:
        systems.append(("d2lv sum merge", f"{input.matches}#score_sum", BENCH_STEPS["merged"], stored))
    systems.append((f"d2lv full ({MERGE['mode']} merge)", input.matches, BENCH_STEPS["merged"], stored))
    return " ".join(
        f"--system {shlex.quote(f'{name}={predictions}')} --stages {shlex.quote(f'{name}={stages}')}"
        f" --storage {shlex.quote(name + '=' + ','.join(storage))}"
        for name, predictions, stages, storage in systems
    )
