PDQ_HASHES = f"{WORK}/pdq/hashes"
PDQ_REFERENCES = f"{WORK}/pdq/references.h5"


rule pdq_hash:
    """PDQ hashes of one shard: one per reference, the 8 dihedral variants of each image of a query view."""
    input:
        f"{WORK}/manifests/{{set}}/{{shard}}.parquet",
    output:
        f"{PDQ_HASHES}/{{set}}/{{shard}}.h5",
    log:
        f"{LOGS}/pdq_hash/{{set}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pdq_hash/{{set}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, DecodeParams),
        dihedral=lambda wc: "--dihedral" if wc.set in PLAN.views else "",
    shell:
        "d2lv pdq-hash --quiet {input:q} --set {wildcards.set:q} {params.dihedral} -o {output:q} {params.options}"
        " 2> {log:q}"


rule pdq_search:
    """Each query of one shard: its nearest references by Hamming distance, over all of its views."""
    input:
        queries=lambda wc: PLAN.view_files(f"{PDQ_HASHES}/{{set}}/{{shard}}.h5", wc.qset, wc.shard),
        references=lambda wc: [PDQ_REFERENCES, *PLAN.near_files(f"{PDQ_HASHES}/{{set}}/{{shard}}.h5", wc.qset)],
    output:
        f"{WORK}/pdq/{{qset}}/candidates/{{shard}}.parquet",
    log:
        f"{LOGS}/pdq_search/{{qset}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pdq_search/{{qset}}/{{shard}}.tsv"
    conda:
        "../envs/d2lv.yaml"
    params:
        options=d2lv_workflow.flags(config, PdqParams),
    shell:
        "d2lv pdq-search --quiet --queries {input.queries:q} --references {input.references:q} -o {output:q}"
        " {params.options} 2> {log:q}"


rule pdq_gather:
    """Every reference shard's hashes in one file, which each search reads (one input, not one per shard)."""
    input:
        PLAN.shard_files(f"{PDQ_HASHES}/{{set}}/{{shard}}.h5", "references"),
    output:
        PDQ_REFERENCES,
    log:
        f"{LOGS}/pdq_gather.log",
    benchmark:
        f"{RESULTS}/benchmarks/pdq_gather.tsv"
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv pdq-gather --quiet {input:q} -o {output:q} 2> {log:q}"


rule pdq_export:
    """The references' PDQ hashes in ThreatExchange's format, for hash-sharing lists and HMA banks."""
    input:
        PDQ_REFERENCES,
    output:
        f"{RESULTS}/pdq_hashes.csv",
    log:
        f"{LOGS}/pdq_export.log",
    conda:
        "../envs/d2lv.yaml"
    shell:
        "d2lv pdq-export --quiet --references {input:q} -o {output:q} 2> {log:q}"
