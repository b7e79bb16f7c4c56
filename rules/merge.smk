rule make_calibration:
    """Edited copies of the fit_images reference shards: labelled pairs for the calibrated merge, no user labels."""
    input:
        manifests=PLAN.fit_files(f"{WORK}/manifests/references/{{shard}}.parquet"),
        usable=PLAN.usable_references,
    output:
        images=PLAN.made_images(),
        ground_truth=f"{PLAN.calibration_dir}/ground_truth.csv",
        categories=f"{PLAN.calibration_dir}/categories.csv",
        overlaps=f"{PLAN.calibration_dir}/overlaps.csv",
    log:
        f"{LOGS}/make_calibration.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_calibration.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        out=lambda wildcards, output: Path(output.ground_truth).parent,
        options=d2lv_workflow.flags(config, CalibrationParams),
    shell:
        "d2lv make-calibration --quiet {input.manifests:q} -o {params.out:q} {params.options} 2> {log:q}"


rule fit_merge:
    """The calibrated merge: a logistic regression over every branch's features of the calibration pairs."""
    input:
        **PLAN.merge_inputs("calibration") if PLAN.calibrated else {},
        ground_truth=f"{PLAN.calibration_dir}/ground_truth.csv",
        overlaps=f"{PLAN.calibration_dir}/overlaps.csv",
    output:
        f"{WORK}/merge/model.json",
    log:
        f"{LOGS}/fit_merge.log",
    benchmark:
        f"{RESULTS}/benchmarks/fit_merge.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, FitParams),
    shell:
        "d2lv fit-merge --local {input.local:q} --crop {input.crop:q} --global {input.global_:q} --pdq {input.pdq:q}"
        " --scores {input.scores:q} --boxes {input.boxes:q} --ground-truth {input.ground_truth:q}"
        " --ignore {input.overlaps:q}"
        " {params.options} -o {output:q} 2> {log:q}"


rule matches:
    """Ranked matches in ISC format, plus every per-branch column in Parquet."""
    input:
        **PLAN.merge_inputs("queries"),
        model=f"{WORK}/merge/model.json" if PLAN.calibrated else [],
    output:
        csv=f"{RESULTS}/matches.csv",
        parquet=f"{RESULTS}/matches.parquet",
    log:
        f"{LOGS}/matches.log",
    benchmark:
        f"{RESULTS}/benchmarks/matches.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, MergeParams, OutputParams),
        model=lambda wildcards, input: d2lv_workflow.path_option("--model", input.model),
    shell:
        "d2lv matches --quiet --local {input.local:q} --crop {input.crop:q} --global {input.global_:q} --pdq {input.pdq:q}"
        " --scores {input.scores:q} --boxes {input.boxes:q} {params.options} {params.model} -o {output.csv:q}"
        " --parquet {output.parquet:q} 2> {log:q}"


rule collection:
    """What `d2lv query` and `d2lv serve` load: the query side's indexes and models, and the run's config."""
    input:
        **PLAN.collection_inputs(),
    output:
        f"{RESULTS}/collection.json",
    log:
        f"{LOGS}/collection.log",
    conda:
        "../envs/d2lv.yaml"
    params:
        results=lambda wildcards, output: Path(output[0]).parent,
        config=json.dumps(config, sort_keys=True),
    shell:
        "d2lv collection --results {params.results:q} --config-json {params.config:q} --index {input.index:q}"
        " --lists {input.lists:q} --catalogue {input.catalogue:q} --stores {input.stores:q}"
        " --manifests {input.manifests:q} --descriptors {input.descriptors:q} --whitening {input.whitening:q}"
        " --background {input.background:q} --pdq {input.pdq:q} --model {input.model:q}"
        " --detector {input.detector:q} --checkpoint {input.checkpoint:q} --head {input.head:q} 2> {log:q}"
