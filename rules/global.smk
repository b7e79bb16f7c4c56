rule train_descriptor:
    """Contrastive fine-tuning on the fit_images reference shards (when global.train)."""
    input:
        manifests=PLAN.fit_files(f"{WORK}/manifests/references/{{shard}}.parquet"),
        usable=PLAN.usable_references,
    output:
        d2lv_workflow.trained_descriptor(WORK),
    log:
        f"{LOGS}/train_descriptor.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_descriptor.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, BackboneParams, CheckpointParams, TrainParams),
    shell:
        "d2lv train-descriptor --quiet {input.manifests:q} -o {output:q} {params.options} --workers {threads:q} 2> {log:q}"


rule global_extract:
    """Global CNN descriptors (GeM pooled, L2-normalised) of one shard; of each query's crop where it has one, and
    of each query's regions (global.regions)."""
    input:
        manifest=f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
        crops=query_crops,
        checkpoint=PLAN.descriptor_checkpoint,
        # an input, so that a new copy head (global.head) reruns the extraction
        head=PLAN.descriptor_head,
    output:
        f"{WORK}/global/raw/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/global_extract/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_extract/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, BackboneParams, HeadParams, DecodeParams),
        # query sets only: a change to the regions reruns no reference shard
        regions=lambda wc: d2lv_workflow.flags(config, RegionParams) if wc.set in PLAN.query_sets else "",
        # the trained descriptor when global.train, else global.checkpoint (CheckpointParams)
        checkpoint=lambda wildcards, input: d2lv_workflow.path_option("--checkpoint", input.checkpoint),
        crops=lambda wildcards, input: d2lv_workflow.path_option("--crops", input.crops),
    shell:
        "d2lv global-extract --quiet {input.manifest:q} --set {wildcards.set:q} {params.crops} -o {output:q}"
        " {params.options} {params.regions} {params.checkpoint} --threads {threads:q} 2> {log:q}"


rule global_whitening:
    """PCA whitening to `global.dim` dimensions, fitted on the fit_images reference shards."""
    input:
        descriptors=PLAN.fit_files(f"{WORK}/global/raw/references/{{shard}}.h5"),
        usable=PLAN.usable_references,
    output:
        f"{WORK}/global/whitening.h5",
    log:
        f"{LOGS}/global_whitening.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_whitening.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, WhiteningParams),
    shell:
        "d2lv global-whitening --quiet {input.descriptors:q} -o {output:q} {params.options} 2> {log:q}"


rule global_search:
    """Each query of one shard's most similar references over the whole collection (whitened cosine)."""
    input:
        whitening=f"{WORK}/global/whitening.h5",
        references=lambda wc: PLAN.searched_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", wc.qset),
        queries=f"{WORK}/global/raw/{{qset}}/{{shard}}.h5",
        background=PLAN.shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "background") if "background" in PLAN.shards else [],
    output:
        f"{WORK}/global/{{qset}}/candidates/{{shard}}.parquet",
    log:
        f"{LOGS}/global_search/{{qset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_search/{{qset}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, SearchParams),
        background=lambda wildcards, input: (
            f"{d2lv_workflow.path_option('--background', input.background)} "
            f"{d2lv_workflow.flags(config, BackgroundParams)}"
            if input.background
            else ""
        ),
    shell:
        "d2lv global-search --quiet --queries {input.queries:q} --references {input.references:q}"
        " --whitening {input.whitening:q} {params.background} -o {output:q} {params.options} 2> {log:q}"


rule global_export:
    """All whitened descriptors in the ISC 2021 descriptor-track h5 layout."""
    input:
        whitening=f"{WORK}/global/whitening.h5",
        queries=PLAN.shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "queries"),
        references=PLAN.shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "references"),
    output:
        f"{RESULTS}/global_descriptors.h5",
    log:
        f"{LOGS}/global_export.log",
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv global-export --quiet --queries {input.queries:q} --references {input.references:q}"
        " --whitening {input.whitening:q} -o {output:q} 2> {log:q}"
