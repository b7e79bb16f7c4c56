rule manifest:
    """Decode every image of one shard; record size, or the reason it is unusable."""
    input:
        shard_images,
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
        folder=lambda wc: PLAN.folders[wc.set],
        num_shards=lambda wc: len(PLAN.shards[wc.set]),
        shard=lambda wc: int(wc.shard),
        options=d2lv_workflow.flags(config, DecodeParams),
        # not inputs, but a change to them reruns the shard all the same
        untracked=untracked_images,
    shell:
        "d2lv manifest --quiet {params.folder:q} --shard {params.shard:q} --num-shards {params.num_shards:q}"
        " {params.options} -o {output:q} 2> {log:q}"


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


rule sift:
    """RootSIFT keypoints of one shard, into an HDF5 feature store."""
    input:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    output:
        f"{WORK}/features/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/sift/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sift/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, SiftParams, DecodeParams),
    shell:
        "d2lv sift --quiet {input:q} -o {output:q} {params.options} 2> {log:q}"
