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
        f"{RESULTS}/benchmarks/local_index/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL["threads"]
    params:
        options=d2lv_workflow.flags(config, IndexParams),
    shell:
        "d2lv local-index --quiet {input} -o {output} {params.options} --threads {threads} 2> {log}"


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
        f"{RESULTS}/benchmarks/local_recall/{{view}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL["threads"]
    params:
        options=d2lv_workflow.flags(config, RecallParams),
    shell:
        "d2lv local-recall --quiet --index {input.index} --references {input.references}"
        " --queries {input.queries} -o {output} {params.options} --threads {threads} 2> {log}"


rule verify:
    """Ratio-test matching, mirrored pass and geometric verification of one shard's candidates (all branches),
    in one query view: the whole query (`local`) or its detected copy region (`local_crop`)."""
    input:
        pairs=lambda wc: view_pairs(wc.view, wc.shard),
        references=f"{WORK}/features/references/{{shard}}.h5",
        queries=lambda wc: shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", wc.view),
    output:
        f"{WORK}/local/{{view}}/scores/{{shard}}.parquet",
    log:
        f"{LOGS}/verify/{{view}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/verify/{{view}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, VerifyParams),
        branch=lambda wc: "local" if wc.view in QUERY_SETS else "local_crop",
    shell:
        "d2lv verify --quiet --pairs {input.pairs} --queries {input.queries} --references {input.references}"
        " -o {output} --branch {params.branch} {params.options} 2> {log}"


rule local_candidates:
    """Each query's final local candidates in one view, gathered over all reference shards."""
    input:
        shard_files(f"{WORK}/local/{{{{view}}}}/pairs/{{shard}}.parquet", "references"),
    output:
        f"{WORK}/local/{{view}}/candidates.parquet",
    log:
        f"{LOGS}/local_candidates/{{view}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_candidates/{{view}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, CandidateParams, SingleCandidateRule),
    shell:
        "d2lv local-candidates --quiet --pairs {input} -o {output} {params.options} 2> {log}"
