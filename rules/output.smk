rule matches:
    """Ranked matches in ISC format, plus every per-branch column in Parquet."""
    input:
        **merge_inputs("queries"),
        model=f"{WORK}/merge/model.json" if CALIBRATED else [],
    output:
        csv=f"{RESULTS}/matches.csv",
        parquet=f"{RESULTS}/matches.parquet",
    log:
        f"{LOGS}/matches.log",
    benchmark:
        f"{RESULTS}/benchmarks/matches.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, MergeParams, OutputParams),
        model=lambda wildcards, input: f"--model {input.model}" if input.model else "",
    shell:
        "d2lv matches --quiet --local {input.local} --crop {input.crop} --global {input.global_}"
        " --scores {input.scores} --boxes {input.boxes} {params.options} {params.model} -o {output.csv}"
        " --parquet {output.parquet} 2> {log}"


rule skipped:
    """Inputs that could not take part, with the reason."""
    input:
        queries_manifests=shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        queries_features=shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "queries"),
        references_features=shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "references"),
        # the files the listing set aside: a new one (a .DS_Store) reruns this rule, and only this rule
        refused=d2lv_workflow.refused_files(LISTINGS["queries"]) + d2lv_workflow.refused_files(LISTINGS["references"]),
    output:
        f"{RESULTS}/skipped.csv",
    log:
        f"{LOGS}/skipped.log",
    benchmark:
        f"{RESULTS}/benchmarks/skipped.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        min_keypoints=config["sift"]["min_keypoints"],
        queries=SET_FOLDERS["queries"],
        references=SET_FOLDERS["references"],
    shell:
        "d2lv skipped --quiet --queries-folder {params.queries:q} --references-folder {params.references:q}"
        " --queries-manifests {input.queries_manifests}"
        " --references-manifests {input.references_manifests} --queries-features {input.queries_features}"
        " --references-features {input.references_features} --min-keypoints {params.min_keypoints}"
        " -o {output} 2> {log}"


rule evaluate:
    """micro-AP, recall at precision 0.9 and recall@1 against the ground truth."""
    input:
        matches=f"{RESULTS}/matches.csv",
        ground_truth=GROUND_TRUTH or [],
    output:
        f"{RESULTS}/metrics.json",
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv evaluate {input.matches} --ground-truth {input.ground_truth} -o {output} 2> {log}"
