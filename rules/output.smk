rule matches:
    """Ranked matches in ISC format, plus every per-branch column in Parquet."""
    input:
        **PLAN.merge_inputs("queries"),
        model=f"{WORK}/merge/model.json" if PLAN.calibrated else [],
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
        model=lambda wildcards, input: d2lv_workflow.path_option("--model", input.model),
    shell:
        "d2lv matches --quiet --local {input.local:q} --crop {input.crop:q} --global {input.global_:q} --pdq {input.pdq:q}"
        " --scores {input.scores:q} --boxes {input.boxes:q} {params.options} {params.model} -o {output.csv:q}"
        " --parquet {output.parquet:q} 2> {log:q}"


rule skipped:
    """Inputs that could not take part, with the reason."""
    input:
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        queries_features=PLAN.shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "queries"),
        references_features=PLAN.shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "references"),
        # the files the listing set aside: a new one (a .DS_Store) reruns this rule, and only this rule
        refused=PLAN.refused_inputs(),
    output:
        f"{RESULTS}/skipped.csv",
    log:
        f"{LOGS}/skipped.log",
    benchmark:
        f"{RESULTS}/benchmarks/skipped.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, UsableParams),
        queries=PLAN.folders["queries"],
        references=PLAN.folders["references"],
    shell:
        "d2lv skipped --quiet --queries-folder {params.queries:q} --references-folder {params.references:q}"
        " --queries-manifests {input.queries_manifests:q}"
        " --references-manifests {input.references_manifests:q} --queries-features {input.queries_features:q}"
        " --references-features {input.references_features:q} {params.options}"
        " -o {output:q} 2> {log:q}"


rule evaluate:
    """micro-AP, recall at precision 0.9 and recall@1 against the ground truth, over the queries in the query set
    and the references in the reference set."""
    input:
        matches=f"{RESULTS}/matches.csv",
        ground_truth=PLAN.ground_truth or [],
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
    output:
        f"{RESULTS}/metrics.json",
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv evaluate {input.matches:q} --ground-truth {input.ground_truth:q}"
        " --queries-manifests {input.queries_manifests:q} --references-manifests {input.references_manifests:q}"
        " -o {output:q} 2> {log:q}"
