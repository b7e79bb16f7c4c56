# Benchmark: baselines beside the pipeline, on the same images, and one report.
#   snakemake bench --config queries=B/queries references=B/references results=OUT \
#       ground_truth=B/ground_truth.csv categories=B/categories.csv
# or simply: d2lv bench run B -o OUT

BENCH = f"{RESULTS}/bench"


rule bench_pdq_match:
    """The PDQ baseline: nearest references of every query by Hamming distance over the dihedral variants (the
    whole query only, no threshold)."""
    input:
        queries=PLAN.shard_files(f"{PDQ_HASHES}/{{set}}/{{shard}}.h5", "queries"),
        references=PDQ_REFERENCES,
    output:
        f"{BENCH}/pdq.parquet",
    log:
        f"{LOGS}/bench_pdq_match.log",
    benchmark:
        f"{RESULTS}/benchmarks/bench_pdq_match.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, BaselineParams),
    shell:
        "d2lv bench pdq-match --quiet --queries {input.queries:q} --references {input.references:q}"
        " -o {output:q} {params.options} 2> {log:q}"


rule bench_cnn_extract:
    """ImageNet CNN descriptors (GeM, L2) of one shard: the global-CNN-only baseline."""
    input:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    output:
        f"{WORK}/cnn/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/bench_cnn_extract/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/bench_cnn_extract/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=d2lv_workflow.flags(config, CnnBaselineParams, DecodeParams),
    shell:
        "d2lv descriptor-extract --quiet {input:q} --set {wildcards.set:q} -o {output:q} --threads {threads:q}"
        " {params.options} 2> {log:q}"


rule bench_cnn_search:
    """Nearest references of every query by cosine similarity."""
    input:
        queries=PLAN.shard_files(f"{WORK}/cnn/{{set}}/{{shard}}.h5", "queries"),
        references=PLAN.shard_files(f"{WORK}/cnn/{{set}}/{{shard}}.h5", "references"),
    output:
        f"{BENCH}/cnn.parquet",
    log:
        f"{LOGS}/bench_cnn_search.log",
    benchmark:
        f"{RESULTS}/benchmarks/bench_cnn_search.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, BaselineParams),
    shell:
        "d2lv descriptor-search --quiet --queries {input.queries:q} --references {input.references:q}"
        " -o {output:q} {params.options} 2> {log:q}"


rule bench_report:
    """report.md, results.parquet and plots: every system on the same benchmark."""
    input:
        ground_truth=PLAN.ground_truth or [],
        categories=PLAN.categories or [],
        pdq=f"{BENCH}/pdq.parquet",
        cnn=f"{BENCH}/cnn.parquet",
        local_candidates=PLAN.shard_files(f"{WORK}/local/queries/candidates/{{shard}}.parquet", "queries"),
        global_candidates=(
            PLAN.shard_files(f"{WORK}/descriptor/queries/candidates/{{shard}}.parquet", "queries")
            if PLAN.descriptor
            else []
        ),
        matches=f"{RESULTS}/matches.parquet",
        global_store=([DESCRIPTOR_REFERENCES] if PLAN.descriptor else []),
        pdq_store=[PDQ_REFERENCES],
        pdq_candidates=(
            PLAN.shard_files(f"{WORK}/pdq/queries/candidates/{{shard}}.parquet", "queries") if PLAN.pdq else []
        ),
        cnn_store=PLAN.shard_files(f"{WORK}/cnn/{{set}}/{{shard}}.h5", "references"),
        local_index=[f"{INDEX}/merged.faiss", f"{INDEX}/merged.ivfdata"],
        local_features=PLAN.shard_files(f"{WORK}/features/{{set}}/{{shard}}.h5", "references"),
        queries_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "queries"),
        references_manifests=PLAN.shard_files(f"{WORK}/manifests/{{set}}/{{shard}}.parquet", "references"),
        boxes=PLAN.shard_files(f"{WORK}/detect/queries/boxes/{{shard}}.parquet", "queries") if PLAN.detect else [],
    output:
        report=f"{BENCH}/report.md",
        table=f"{BENCH}/results.parquet",
        pr=f"{BENCH}/pr_curves.png",
    log:
        f"{LOGS}/bench_report.log",
    conda:
        "../envs/d2lv.yaml"
    params:
        categories=lambda wildcards, input: d2lv_workflow.path_option("--categories", input.categories),
        boxes=lambda wildcards, input: d2lv_workflow.path_option("--boxes", input.boxes),
        out=lambda wildcards, output: Path(output.report).parent,
        benchmarks=f"{RESULTS}/benchmarks",
        systems=lambda wildcards, input: d2lv_workflow.bench_report_options(PLAN, input),
    shell:
        "d2lv bench report --quiet --ground-truth {input.ground_truth:q} {params.categories}"
        " --queries-manifests {input.queries_manifests:q} --references-manifests {input.references_manifests:q}"
        " {params.boxes} --benchmarks {params.benchmarks:q} -o {params.out:q} --baseline PDQ {params.systems}"
        " 2> {log:q}"


rule bench:
    """Target: the benchmark report (run with ground_truth set), and the pipeline's own outputs."""
    input:
        rules.bench_report.output,
        PLAN.final_outputs(),
