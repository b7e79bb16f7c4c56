rule manifest:
    """Decode every image of one shard; record size, or the reason it is unusable."""
    wildcard_constraints:
        set="|".join(SET_FOLDERS),
    input:
        shard_images,
    output:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    log:
        f"{LOGS}/manifest/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest/{{set}}/{{shard}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    params:
        folder=lambda wc: SET_FOLDERS[wc.set],
        num_shards=lambda wc: len(PLANS[wc.set]),
        shard=lambda wc: int(wc.shard),
        max_pixels=config["max_pixels"],
    shell:
        "d2lv manifest --quiet {params.folder:q} --shard {params.shard} --num-shards {params.num_shards}"
        " --max-pixels {params.max_pixels} -o {output} 2> {log}"


rule sift:
    """RootSIFT keypoints of one shard, into an HDF5 feature store."""
    input:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    output:
        f"{WORK}/features/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/sift/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sift/{{set}}/{{shard}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    params:
        short_side=config["sift"]["short_side"],
        max_keypoints=config["sift"]["max_keypoints"],
        max_pixels=config["max_pixels"],
    shell:
        "d2lv sift --quiet {input} -o {output} --short-side {params.short_side}"
        " --max-keypoints {params.max_keypoints} --max-pixels {params.max_pixels} 2> {log}"
