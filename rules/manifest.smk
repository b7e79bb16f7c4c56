rule manifest:
    """Decode every image of one shard (named in its shard list, written when the Snakefile is parsed: no job
    lists the folder again); record size, or the reason it is unusable."""
    input:
        images=shard_list,
        made=made_by,
    output:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    log:
        f"{LOGS}/manifest/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest/{{set}}/{{shard}}.tsv"
    wildcard_constraints:
        set="|".join(PLAN.folders),
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, DecodeParams),
        # the images' sizes and times: an image changed in place reruns its shard
        stamp=shard_stamp,
    shell:
        "d2lv manifest --quiet --files-from {input.images:q} {params.options} -o {output:q} 2> {log:q}"


rule check_references:
    """Stop the run, before any model is fitted, when no image of the fit_images reference shards can be used."""
    input:
        PLAN.fit_files(f"{WORK}/manifests/references/{{shard}}.parquet"),
    output:
        PLAN.usable_references,
    log:
        f"{LOGS}/check_references.log",
    benchmark:
        f"{RESULTS}/benchmarks/check_references.tsv"
    priority: 10  # as soon as the manifests are in: it is what decides whether the rest of the run makes sense
    conda:
        "../envs/d2lv.yaml"
    params:
        num_shards=len(PLAN.shards["references"]),
    shell:
        "d2lv check-references --quiet {input:q} --num-shards {params.num_shards:q} -o {output:q} 2> {log:q}"


rule skipped:
    """Inputs that could not take part, with the reason."""
    input:
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        queries_features=PLAN.shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "queries"),
        references_features=PLAN.shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "references"),
        # what the listings set aside (a new .DS_Store changes the list: it reruns this rule, and only this rule)
        queries_refused=PLAN.refusal_list("queries"),
        references_refused=PLAN.refusal_list("references"),
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
    shell:
        "d2lv skipped --quiet --queries-refused {input.queries_refused:q} --references-refused {input.references_refused:q}"
        " --queries-manifests {input.queries_manifests:q}"
        " --references-manifests {input.references_manifests:q} --queries-features {input.queries_features:q}"
        " --references-features {input.references_features:q} {params.options}"
        " -o {output:q} 2> {log:q}"
