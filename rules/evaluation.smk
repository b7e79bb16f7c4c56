rule evaluate:
    """micro-AP, recall at precision 0.9 and recall@1 against the ground truth, over the queries in the query set
    and the references in the reference set."""
    input:
        matches=f"{RESULTS}/matches.csv",
        ground_truth=PLAN.ground_truth or [],
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
    output:
        f"{RESULTS}/metrics.json",
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv evaluate {input.matches:q} --ground-truth {input.ground_truth:q}"
        " --queries-manifests {input.queries_manifests:q} --references-manifests {input.references_manifests:q}"
        " -o {output:q} 2> {log:q}"
