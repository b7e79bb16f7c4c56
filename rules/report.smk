# Figures for the self-contained HTML report (the default target builds them):
#   snakemake --cores all && snakemake --report report.html

import os

REPORT = config["report"]


report: "../workflow/report/workflow.rst"


rule report_figures:
    """Metrics, precision-recall, recall per family and matched pairs drawn side by side."""
    input:
        matches=f"{RESULTS}/matches.parquet",
        ground_truth=GROUND_TRUTH or [],
        categories=CATEGORIES or [],
        queries_manifests=shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        boxes=shard_files(f"{WORK}/detect/queries/boxes/{{shard}}.parquet", "queries") if DETECT_ENABLED else [],
    output:
        metrics=report(f"{RESULTS}/report/metrics.csv", caption="../workflow/report/metrics.rst", category="Metrics"),
        pr_curve=report(f"{RESULTS}/report/pr_curve.png", caption="../workflow/report/pr_curve.rst", category="Metrics"),
        families=report(
            f"{RESULTS}/report/recall_per_family.png",
            caption="../workflow/report/recall_per_family.rst",
            category="Metrics",
        ),
        pairs=report(
            directory(f"{RESULTS}/report/pairs"),
            patterns=["{selection,[a-z0-9]+}_{rank,\\d+}_{pair}.jpg"],
            caption="../workflow/report/pairs.rst",
            category="Matches",
            subcategory="{selection}",
            labels={"selection": "{selection}", "rank": "{rank}", "pair": "{pair}"},
        ),
    log:
        f"{LOGS}/report_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_figures.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        ground_truth=lambda wildcards, input: f"--ground-truth {input.ground_truth}" if input.ground_truth else "",
        categories=lambda wildcards, input: f"--categories {input.categories}" if input.categories else "",
        options=d2lv_workflow.flags(config, OutputParams, ReportParams, SiftParams, VerifyParams),
    shell:
        "d2lv report-figures --quiet --matches {input.matches} {params.ground_truth} {params.categories}"
        " --queries-manifests {input.queries_manifests} --references-manifests {input.references_manifests}"
        " --boxes {input.boxes} {params.options} -o {params.out} 2> {log}"
