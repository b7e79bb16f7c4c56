GLOBAL = config["global"]
TRAINED = f"{WORK}/global/descriptor.pt"


rule train_descriptor:
    """Contrastive fine-tuning on the first `global.pca_shards` reference shards (when global.train)."""
    input:
        lambda wildcards: shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references")[
            : GLOBAL["pca_shards"]
        ],
    output:
        TRAINED,
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
        backbone=GLOBAL["backbone"],
        checkpoint=f"--checkpoint {GLOBAL['checkpoint']}" if GLOBAL["checkpoint"] else "",
        dim=GLOBAL["dim"],
        image_size=GLOBAL["image_size"],
        device=GLOBAL["device"],
        steps=GLOBAL["train_steps"],
        batch_size=GLOBAL["train_batch_size"],
        lr=GLOBAL["train_lr"],
    shell:
        "d2lv train-descriptor --quiet {input} -o {output} --backbone {params.backbone} {params.checkpoint}"
        " --dim {params.dim} --image-size {params.image_size} --device {params.device} --steps {params.steps}"
        " --batch-size {params.batch_size} --lr {params.lr} --workers {threads} 2> {log}"


rule global_extract:
    """Global CNN descriptors (GeM pooled, L2-normalised) of one shard; of each query's crop where it has one."""
    input:
        manifest=f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
        crops=query_crops,
        checkpoint=TRAINED if GLOBAL["train"] else (GLOBAL["checkpoint"] or []),
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
        backbone=GLOBAL["backbone"],
        checkpoint=lambda wildcards, input: f"--checkpoint {input.checkpoint}" if input.checkpoint else "",
        crops=lambda wildcards, input: f"--crops {input.crops}" if input.crops else "",
        device=GLOBAL["device"],
        image_size=GLOBAL["image_size"],
        max_pixels=config["max_pixels"],
    shell:
        "d2lv global-extract --quiet {input.manifest} --set {wildcards.set} {params.crops} -o {output}"
        " --backbone {params.backbone} {params.checkpoint} --device {params.device}"
        " --image-size {params.image_size} --threads {threads} --max-pixels {params.max_pixels} 2> {log}"


rule global_whitening:
    """PCA whitening to `global.dim` dimensions, fitted on the first `global.pca_shards` reference shards."""
    input:
        lambda wildcards: shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "references")[
            : GLOBAL["pca_shards"]
        ],
    output:
        f"{WORK}/global/whitening.h5",
    log:
        f"{LOGS}/global_whitening.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_whitening.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        dim=GLOBAL["dim"],
        shrinkage=GLOBAL["shrinkage"],
    shell:
        "d2lv global-whitening --quiet {input} -o {output} --dim {params.dim} --shrinkage {params.shrinkage}"
        " 2> {log}"


rule global_search:
    """Most similar references of this shard for every query of a set (whitened cosine similarity)."""
    input:
        whitening=f"{WORK}/global/whitening.h5",
        references=f"{WORK}/global/raw/references/{{shard}}.h5",
        queries=lambda wc: shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", wc.qset),
        background=shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "background")
        if "background" in PLANS
        else [],
    output:
        f"{WORK}/global/{{qset}}/pairs/{{shard}}.parquet",
    log:
        f"{LOGS}/global_search/{{qset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_search/{{qset}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        topk=GLOBAL["topk"],
        background=lambda wildcards, input: (
            f"--background {input.background} --background-k {GLOBAL['background_k']}"
            f" --background-beta {GLOBAL['background_beta']}"
            if input.background
            else ""
        ),
    shell:
        "d2lv global-search --quiet --queries {input.queries} --references {input.references}"
        " --whitening {input.whitening} {params.background} -o {output} --topk {params.topk} 2> {log}"


rule global_candidates:
    """Each query's top global candidates over all reference shards."""
    input:
        shard_files(f"{WORK}/global/{{{{qset}}}}/pairs/{{shard}}.parquet", "references"),
    output:
        f"{WORK}/global/{{qset}}/candidates.parquet",
    log:
        f"{LOGS}/global_candidates/{{qset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/global_candidates/{{qset}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        topk=GLOBAL["topk"],
    shell:
        "d2lv global-select --quiet --pairs {input} -o {output} --topk {params.topk} 2> {log}"


rule global_descriptors:
    """All whitened descriptors in the ISC 2021 descriptor-track h5 layout."""
    input:
        whitening=f"{WORK}/global/whitening.h5",
        queries=shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "queries"),
        references=shard_files(f"{WORK}/global/raw/{{set}}/{{shard}}.h5", "references"),
    output:
        f"{RESULTS}/global_descriptors.h5",
    log:
        f"{LOGS}/global_descriptors.log",
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv global-export --quiet --queries {input.queries} --references {input.references}"
        " --whitening {input.whitening} -o {output} 2> {log}"
