# Figures for the self-contained HTML report (the default target builds them):
#   snakemake --cores all && snakemake --report report.html

import os

REPORT = config["report"]


report: "../workflow/report/workflow.rst"


rule report_figures:
    """Metrics, precision-recall, recall per family and matched pairs drawn side by side."""
    input:
        matches=f"{RESULTS}/matches.parquet",
        ground_truth=PLAN.ground_truth or [],
        categories=PLAN.categories or [],
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        boxes=PLAN.shard_files(f"{WORK}/detect/queries/boxes/{{shard}}.parquet", "queries") if PLAN.detect else [],
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
        ground_truth=lambda wildcards, input: d2lv_workflow.path_option("--ground-truth", input.ground_truth),
        categories=lambda wildcards, input: d2lv_workflow.path_option("--categories", input.categories),
        options=d2lv_workflow.flags(config, OutputParams, ReportParams, SiftParams, VerifyParams),
    shell:
        "d2lv report-figures --quiet --matches {input.matches:q} {params.ground_truth} {params.categories}"
        " --queries-manifests {input.queries_manifests:q} --references-manifests {input.references_manifests:q}"
        " --boxes {input.boxes:q} {params.options} -o {params.out:q} 2> {log:q}"
