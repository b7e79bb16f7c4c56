LOCAL = config["local"]


rule local_index:
    """A faiss index over every descriptor of one reference shard."""
    input:
        f"{WORK}/features/references/{{shard}}.h5",
    output:
        f"{WORK}/local/index/{{shard}}.faiss",
    log:
        f"{LOGS}/local_index/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_index/{{shard}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL["threads"]
    params:
        factory=LOCAL["index_factory"],
    shell:
        "d2lv local-index --quiet {input} -o {output} --factory {params.factory:q} --threads {threads} 2> {log}"


rule local_recall:
    """kNN search of all descriptors of one query view in one reference shard; votes per reference."""
    input:
        index=f"{WORK}/local/index/{{shard}}.faiss",
        references=f"{WORK}/features/references/{{shard}}.h5",
        queries=lambda wc: shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", wc.view),
    output:
        f"{WORK}/local/{{view}}/pairs/{{shard}}.parquet",
    log:
        f"{LOGS}/local_recall/{{view}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_recall/{{view}}/{{shard}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL["threads"]
    params:
        knn=LOCAL["knn"],
        max_distance=LOCAL["max_distance"],
        topk=LOCAL["topk"],
        min_votes=LOCAL["min_votes"],
        nprobe=LOCAL["nprobe"],
    shell:
        "d2lv local-recall --quiet --index {input.index} --references {input.references}"
        " --queries {input.queries} -o {output} --knn {params.knn} --max-distance {params.max_distance}"
        " --topk {params.topk} --min-votes {params.min_votes} --nprobe {params.nprobe}"
        " --threads {threads} 2> {log}"


rule local_verify:
    """Ratio-test matching, mirrored pass and geometric verification of one shard's candidates (all branches),
    in one query view: the whole query (`local`) or its detected copy region (`local_crop`)."""
    input:
        pairs=lambda wc: view_pairs(wc.view, wc.shard),
        references=f"{WORK}/features/references/{{shard}}.h5",
        queries=lambda wc: shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", wc.view),
    output:
        f"{WORK}/local/{{view}}/scores/{{shard}}.parquet",
    log:
        f"{LOGS}/local_verify/{{view}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_verify/{{view}}/{{shard}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    params:
        ratio=config["verify"]["ratio"],
        mirror="" if config["verify"]["mirrored"] else "--no-mirror",
        geometry=config["verify"]["geometry"],
        ransac_threshold=config["verify"]["ransac_threshold"],
        short_side=config["sift"]["short_side"],
        branch=lambda wc: "local" if wc.view in QUERY_SETS else "local_crop",
    shell:
        "d2lv verify --quiet --pairs {input.pairs} --queries {input.queries} --references {input.references}"
        " -o {output} --branch {params.branch} --ratio {params.ratio} {params.mirror} --geometry {params.geometry}"
        " --ransac-threshold {params.ransac_threshold} --short-side {params.short_side} 2> {log}"


rule local_candidates:
    """Each query's final local candidates in one view, gathered over all reference shards."""
    input:
        shard_files(f"{WORK}/local/{{{{view}}}}/pairs/{{shard}}.parquet", "references"),
    output:
        f"{WORK}/local/{{view}}/candidates.parquet",
    log:
        f"{LOGS}/local_candidates/{{view}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_candidates/{{view}}.tsv",
    conda:
        "../envs/d2lv.yaml"
    params:
        topk=LOCAL["topk"],
        mode=LOCAL["mode"],
        single=LOCAL["single"],
    shell:
        "d2lv select --quiet --pairs {input} -o {output} --topk {params.topk} --mode {params.mode}"
        " --single-min-votes {params.single[min_votes]}"
        " --single-min-votes-alone {params.single[min_votes_alone]}"
        " --single-max-distance {params.single[max_mean_distance]} 2> {log}"
