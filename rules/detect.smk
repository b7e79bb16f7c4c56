rule train_detector:
    """A YOLOv5u copy-region detector trained on pastes, screenshots and memes made from the references (by
    default going on from the shipped detector's weights, detect.train_from)."""
    input:
        manifests=PLAN.fit_files(f"{WORK}/manifests/references/{{shard}}.parquet"),
        usable=PLAN.usable_references,
        initial=PLAN.detector_start,
    output:
        d2lv_workflow.trained_detector(WORK),
    log:
        f"{LOGS}/train_detector.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_detector.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        work_dir=f"{WORK}/detect/training",
        options=d2lv_workflow.flags(config, TrainingParams, DetectorParams),
    shell:
        "d2lv train-detector --quiet {input.manifests:q} -o {output:q} --work-dir {params.work_dir:q} {params.options}"
        " --workers {threads:q} 2> {log:q}"


rule detect:
    """The copy region of each query of a shard: a box table, and the crops for the crop branch."""
    input:
        manifest=f"{WORK}/manifests/{{qset}}/{{shard}}.parquet",
        weights=PLAN.detector,
    output:
        boxes=f"{WORK}/detect/{{qset}}/boxes/{{shard}}.parquet",
        crops=f"{WORK}/manifests/{{qset}}_crops/{{shard}}.parquet",
        crops_dir=directory(f"{WORK}/detect/{{qset}}/crops/{{shard}}"),
    log:
        f"{LOGS}/detect/{{qset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{qset}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    # torch runs a query's networks on two threads whatever the job is given (d2lv.device.QUERY_TORCH_THREADS)
    threads: 2
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, BoxParams, DetectorParams, DecodeParams),
        config_dir=f"{WORK}/detect/ultralytics-config",
    shell:
        "d2lv detect --quiet {input.manifest:q} --weights {input.weights:q} -o {output.boxes:q}"
        " --crops-manifest {output.crops:q} --crops-dir {output.crops_dir:q} {params.options}"
        " --config-dir {params.config_dir:q} 2> {log:q}"
