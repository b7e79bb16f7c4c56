rule make_calibration:
    """Edited copies of the first reference shard(s): labelled pairs for the calibrated merge, no user labels."""
    input:
        manifests=lambda wildcards: shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references")[
            : MERGE["calibration_shards"]
        ],
        usable=usable_references(MERGE["calibration_shards"]),
    output:
        images=[path for shard in PLANS["calibration"].values() for path in shard] if CALIBRATED else [],
        ground_truth=f"{CALIBRATION_DIR}/ground_truth.csv",
        categories=f"{CALIBRATION_DIR}/categories.csv",
        backdrops=f"{CALIBRATION_DIR}/backdrops.csv",
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
        "d2lv make-calibration --quiet {input.manifests} -o {params.out} {params.options} 2> {log}"


rule fit_merge:
    """The calibrated merge: a logistic regression over every branch's features of the calibration pairs."""
    input:
        **merge_inputs("calibration") if CALIBRATED else {},
        ground_truth=f"{CALIBRATION_DIR}/ground_truth.csv",
        backdrops=f"{CALIBRATION_DIR}/backdrops.csv",
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
        "d2lv fit-merge --local {input.local} --crop {input.crop} --global {input.global_} --scores {input.scores}"
        " --boxes {input.boxes} --ground-truth {input.ground_truth} --ignore {input.backdrops}"
        " {params.options} -o {output} 2> {log}"
