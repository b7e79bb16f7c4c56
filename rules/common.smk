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
