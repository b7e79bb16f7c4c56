import shlex

from d2lv import workflow as d2lv_workflow

RESULTS = config["results"]
WORK = f"{RESULTS}/work"
LOGS = f"{RESULTS}/logs"
SET_FOLDERS = {"queries": config["queries"], "references": config["references"]}
PLANS = {
    name: d2lv_workflow.shard_plan(folder, name, config["shard_size"], config.get("demo_dir"))
    for name, folder in SET_FOLDERS.items()
}
GROUND_TRUTH = d2lv_workflow.ground_truth(config)
CATEGORIES = d2lv_workflow.categories(config)


wildcard_constraints:
    set="queries|references",
    shard=r"\d+",


def shard_images(wildcards):
    return PLANS[wildcards.set][wildcards.shard]


def shard_files(pattern, set_name):
    return expand(pattern, set=set_name, shard=list(PLANS[set_name]))


def final_outputs():
    outputs = [f"{RESULTS}/matches.csv", f"{RESULTS}/skipped.csv"]
    if GROUND_TRUTH:
        outputs.append(f"{RESULTS}/metrics.json")
    return outputs


def report_systems(wildcards, input):
    """`d2lv bench report` arguments: each system's predictions, workflow steps and stored index."""
    systems = [
        ("PDQ", input.pdq, "manifest,bench_pdq_hash,bench_pdq_match", input.pdq_store),
        ("CNN global (ImageNet GeM)", f"{input.cnn}#similarity", "manifest,bench_cnn_extract,bench_cnn_search", input.cnn_store),
        ("d2lv local, votes only", f"{input.candidates}#votes",
         "manifest,sift,local_index,local_recall,local_candidates", input.local_index),
        ("d2lv full", input.matches,
         "manifest,sift,local_index,local_recall,local_verify,local_candidates,matches",
         [*input.local_index, *input.local_features]),
    ]
    return " ".join(
        f"--system {shlex.quote(f'{name}={predictions}')} --stages {shlex.quote(f'{name}={stages}')}"
        f" --storage {shlex.quote(name + '=' + ','.join(storage))}"
        for name, predictions, stages, storage in systems
    )
