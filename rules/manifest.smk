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
        set="|".join(SET_FOLDERS),
    conda:
        "../envs/d2lv.yaml"
    params:
        folder=lambda wc: SET_FOLDERS[wc.set],
        num_shards=lambda wc: len(PLANS[wc.set]),
        shard=lambda wc: int(wc.shard),
        options=d2lv_workflow.flags(config, DecodeParams),
        # not inputs, but a change to them reruns the shard all the same
        untracked=untracked_images,
    shell:
        "d2lv manifest --quiet {params.folder:q} --shard {params.shard:q} --num-shards {params.num_shards:q}"
        " {params.options} -o {output:q} 2> {log:q}"


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
