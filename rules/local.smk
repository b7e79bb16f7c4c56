LOCAL_THREADS = ThreadParams.from_config(config).threads
INDEX = f"{WORK}/local/index"


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


rule local_train:
    """The local index's quantisers, trained once on a seeded sample of the fit_images reference shards."""
    input:
        stores=PLAN.fit_files(f"{WORK}/features/references/{{shard}}.h5"),
        usable=PLAN.usable_references,
    output:
        f"{INDEX}/trained.faiss",
    log:
        f"{LOGS}/local_train.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_train.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL_THREADS
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, IndexParams, IndexDevice),
        # the collection's planned size, shards x shard_size: it sizes the auto factory, and changes (and
        # retrains the index) only when the shard count does, not with every added reference
        references=len(PLAN.shards["references"]) * config["shard_size"],
    shell:
        "d2lv local-train --quiet {input.stores:q} --references {params.references:q} -o {output:q} {params.options}"
        " --threads {threads:q} 2> {log:q}"


rule local_add:
    """One reference shard's descriptors encoded into the trained index, ids = reference numbers."""
    input:
        trained=f"{INDEX}/trained.faiss",
        store=f"{WORK}/features/references/{{shard}}.h5",
    output:
        index=f"{INDEX}/shards/{{shard}}.faiss",
        catalogue=f"{INDEX}/shards/{{shard}}.parquet",
    log:
        f"{LOGS}/local_add/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_add/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL_THREADS
    params:
        shard=lambda wildcards: int(wildcards.shard),
    shell:
        "d2lv local-add --quiet {input.store:q} --trained {input.trained:q} --shard {params.shard:q}"
        " -o {output.index:q} --catalogue {output.catalogue:q} --threads {threads:q} 2> {log:q}"


rule local_merge:
    """Every shard's inverted lists in one index, memory-mapped by the searches (on-disk lists)."""
    input:
        trained=f"{INDEX}/trained.faiss",
        shards=PLAN.shard_files(f"{INDEX}/shards/{{shard}}.faiss", "references"),
        catalogues=PLAN.shard_files(f"{INDEX}/shards/{{shard}}.parquet", "references"),
    output:
        index=f"{INDEX}/merged.faiss",
        lists=f"{INDEX}/merged.ivfdata",
        catalogue=f"{INDEX}/references.parquet",
    log:
        f"{LOGS}/local_merge.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_merge.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv local-merge --quiet --trained {input.trained:q} --shards {input.shards:q}"
        " --catalogues {input.catalogues:q} -o {output.index:q} --catalogue {output.catalogue:q} 2> {log:q}"


rule local_recall:
    """Each query of one shard of a view: its top references over the whole collection, by votes."""
    input:
        index=f"{INDEX}/merged.faiss",
        lists=f"{INDEX}/merged.ivfdata",
        catalogue=f"{INDEX}/references.parquet",
        queries=f"{WORK}/features/{{view}}/{{shard}}.h5",
    output:
        f"{WORK}/local/{{view}}/candidates/{{shard}}.parquet",
    log:
        f"{LOGS}/local_recall/{{view}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/local_recall/{{view}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: LOCAL_THREADS
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, RecallParams, CandidateParams, SingleCandidateRule, IndexDevice),
    shell:
        "d2lv local-recall --quiet --index {input.index:q} --catalogue {input.catalogue:q} --queries {input.queries:q}"
        " -o {output:q} {params.options} --threads {threads:q} 2> {log:q}"


rule verify:
    """Ratio-test matching, mirrored pass and geometric verification of one query shard's candidates (every
    branch's, each pair once), in one query view: the whole query (`local`) or its detected copy region
    (`local_crop`). Reference features are read by id from whichever shard holds them: the shards' stores are
    named in a list, and the index's catalogue (written once every store is encoded) stands for them as input."""
    input:
        pairs=lambda wc: PLAN.candidate_tables(PLAN.views[wc.view], wc.shard),
        references=lambda wc: PLAN.reference_store_list(PLAN.views[wc.view]),
        catalogue=f"{INDEX}/references.parquet",
        near=lambda wc: PLAN.near_files(f"{WORK}/features/{{set}}/{{shard}}.h5", PLAN.views[wc.view]),
        queries=f"{WORK}/features/{{view}}/{{shard}}.h5",
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
        branch=lambda wc: PLAN.verification_branch(wc.view),
    shell:
        "d2lv verify --quiet --pairs {input.pairs:q} --queries {input.queries:q} --references-from {input.references:q}"
        " -o {output:q} --branch {params.branch:q} {params.options} 2> {log:q}"
