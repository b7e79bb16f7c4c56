from d2lv.io import isc as d2lv_sets


rule demo:
    """Build the demo set (edited copies of photos shipped with scikit-image)."""
    output:
        ground_truth=f"{PLAN.demo_dir}/{d2lv_sets.GROUND_TRUTH_FILE}",
        categories=f"{PLAN.demo_dir}/{d2lv_sets.CATEGORIES_FILE}",
        images=PLAN.demo_images(),
    log:
        f"{PLAN.demo_dir}/demo.log",
    conda:
        "../envs/d2lv.yaml"
    params:
        out=lambda wildcards, output: Path(output.ground_truth).parent,
    shell:
        "d2lv demo --quiet {params.out:q} 2> {log:q}"
