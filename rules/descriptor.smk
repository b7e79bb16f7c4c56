DESCRIPTOR_REFERENCES = f"{WORK}/descriptor/references.h5"


rule train_descriptor:
    """Contrastive fine-tuning on the fit_images reference shards (when descriptor.train)."""
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


rule descriptor_extract:
    """Global CNN descriptors (GeM pooled, L2-normalised) of one shard; of each query's crop where it has one, and
    of each query's regions (descriptor.regions)."""
    input:
        manifest=f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
        crops=query_crops,
        checkpoint=PLAN.descriptor_checkpoint,
        # an input, so that a new copy head (descriptor.head) reruns the extraction
        head=PLAN.descriptor_head,
    output:
        f"{WORK}/descriptor/raw/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/descriptor_extract/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/descriptor_extract/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, BackboneParams, HeadParams, DecodeParams),
        # query sets only: a change to the regions reruns no reference shard
        regions=lambda wc: d2lv_workflow.flags(config, RegionParams) if wc.set in PLAN.query_sets else "",
        # the trained descriptor when descriptor.train, else descriptor.checkpoint (CheckpointParams)
        checkpoint=lambda wildcards, input: d2lv_workflow.path_option("--checkpoint", input.checkpoint),
        crops=lambda wildcards, input: d2lv_workflow.path_option("--crops", input.crops),
    shell:
        "d2lv descriptor-extract --quiet {input.manifest:q} --set {wildcards.set:q} {params.crops} -o {output:q}"
        " {params.options} {params.regions} {params.checkpoint} --threads {threads:q} 2> {log:q}"


rule descriptor_whitening:
    """PCA whitening to `descriptor.dim` dimensions, fitted on the fit_images reference shards."""
    input:
        descriptors=PLAN.fit_files(f"{WORK}/descriptor/raw/references/{{shard}}.h5"),
        usable=PLAN.usable_references,
    output:
        f"{WORK}/descriptor/whitening.h5",
    log:
        f"{LOGS}/descriptor_whitening.log",
    benchmark:
        f"{RESULTS}/benchmarks/descriptor_whitening.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, WhiteningParams),
    shell:
        "d2lv descriptor-whitening --quiet {input.descriptors:q} -o {output:q} {params.options} 2> {log:q}"


rule descriptor_whiten:
    """One shard's descriptors whitened once, so that a search reads the collection's 256-d whitened descriptors,
    not every raw one (5 GB at a million references), and whitens nothing again."""
    input:
        whitening=f"{WORK}/descriptor/whitening.h5",
        descriptors=f"{WORK}/descriptor/raw/{{set}}/{{shard}}.h5",
    output:
        f"{WORK}/descriptor/whitened/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/descriptor_whiten/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/descriptor_whiten/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv descriptor-whiten --quiet {input.descriptors:q} --whitening {input.whitening:q} -o {output:q} 2> {log:q}"


rule descriptor_gather:
    """Every reference shard's whitened descriptors in one file (256-d: 1 GB at a million references), which
    each search reads (one input, not one per shard)."""
    input:
        PLAN.shard_files(f"{WORK}/descriptor/whitened/{{set}}/{{shard}}.h5", "references"),
    output:
        DESCRIPTOR_REFERENCES,
    log:
        f"{LOGS}/descriptor_gather.log",
    benchmark:
        f"{RESULTS}/benchmarks/descriptor_gather.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv descriptor-gather --quiet {input:q} -o {output:q} 2> {log:q}"


rule descriptor_search:
    """Each query of one shard's most similar references over the whole collection (whitened cosine)."""
    input:
        references=lambda wc: [
            DESCRIPTOR_REFERENCES,
            *PLAN.near_files(f"{WORK}/descriptor/whitened/{{set}}/{{shard}}.h5", wc.qset),
        ],
        queries=f"{WORK}/descriptor/whitened/{{qset}}/{{shard}}.h5",
        background=(
            PLAN.shard_files(f"{WORK}/descriptor/whitened/{{set}}/{{shard}}.h5", "background")
            if "background" in PLAN.shards
            else []
        ),
    output:
        f"{WORK}/descriptor/{{qset}}/candidates/{{shard}}.parquet",
    log:
        f"{LOGS}/descriptor_search/{{qset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/descriptor_search/{{qset}}/{{shard}}.tsv"
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
        "d2lv descriptor-search --quiet --queries {input.queries:q} --references {input.references:q}"
        " {params.background} -o {output:q} {params.options} 2> {log:q}"


rule descriptor_export:
    """All whitened descriptors in the ISC 2021 descriptor-track h5 layout."""
    input:
        queries=PLAN.shard_files(f"{WORK}/descriptor/whitened/{{set}}/{{shard}}.h5", "queries"),
        references=DESCRIPTOR_REFERENCES,
    output:
        f"{RESULTS}/global_descriptors.h5",
    log:
        f"{LOGS}/descriptor_export.log",
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv descriptor-export --quiet --queries {input.queries:q} --references {input.references:q}"
        " -o {output:q} 2> {log:q}"
