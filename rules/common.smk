import shlex

from d2lv import workflow as d2lv_workflow

RESULTS = config["results"]
WORK = f"{RESULTS}/work"
LOGS = f"{RESULTS}/logs"
SET_FOLDERS = {"queries": config["queries"], "references": config["references"]}
if config["global"]["background"]:
    SET_FOLDERS["background"] = config["global"]["background"]
PLANS = {
    name: d2lv_workflow.shard_plan(folder, name, config["shard_size"], config.get("demo_dir"))
    for name, folder in SET_FOLDERS.items()
}
GLOBAL_ENABLED = config["global"]["enabled"]
GROUND_TRUTH = d2lv_workflow.ground_truth(config)
CATEGORIES = d2lv_workflow.categories(config)


wildcard_constraints:
    set="queries|references|background",
    shard=r"\d+",


def shard_images(wildcards):
    return PLANS[wildcards.set][wildcards.shard]


def shard_files(pattern, set_name):
    return expand(pattern, set=set_name, shard=list(PLANS[set_name]))


def final_outputs():
    outputs = [f"{RESULTS}/matches.csv", f"{RESULTS}/skipped.csv"]
    if GLOBAL_ENABLED:
        outputs.append(f"{RESULTS}/global_descriptors.h5")
    if GROUND_TRUTH:
        outputs.append(f"{RESULTS}/metrics.json")
    return outputs


def report_systems(wildcards, input):
    """`d2lv bench report` arguments: each system's predictions, workflow steps and stored index."""
    local = "manifest,sift,local_index,local_recall,local_candidates"
    glob = "manifest,global_extract,global_whitening,global_search,global_candidates"
    systems = [
        ("PDQ", input.pdq, "manifest,bench_pdq_hash,bench_pdq_match", input.pdq_store),
        ("CNN global (ImageNet GeM)", f"{input.cnn}#similarity", "manifest,bench_cnn_extract,bench_cnn_search",
         input.cnn_store),
        ("d2lv local votes (recall only)", f"{input.local_candidates}#votes", local, input.local_index),
        ("d2lv local branch", f"{input.matches}#verify_local_n_inliers@local_votes",
         f"{local},local_verify", [*input.local_index, *input.local_features]),
    ]
    if GLOBAL_ENABLED:
        systems += [
            ("d2lv global branch", f"{input.global_candidates}#similarity", glob, input.global_store),
            ("d2lv full", input.matches, f"{local},{glob},local_verify,matches",
             [*input.local_index, *input.local_features, *input.global_store]),
        ]
    return " ".join(
        f"--system {shlex.quote(f'{name}={predictions}')} --stages {shlex.quote(f'{name}={stages}')}"
        f" --storage {shlex.quote(name + '=' + ','.join(storage))}"
        for name, predictions, stages, storage in systems
    )
