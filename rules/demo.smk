from d2lv.io import isc as d2lv_sets
from d2lv.synth import demo as d2lv_demo


rule demo:
    """Build the demo set (edited copies of photos shipped with scikit-image)."""
    output:
        ground_truth=f"{config['demo_dir']}/{d2lv_sets.GROUND_TRUTH_FILE}",
        categories=f"{config['demo_dir']}/{d2lv_sets.CATEGORIES_FILE}",
        images=[
            str(path) for paths in d2lv_demo.planned_demo_files(Path(config["demo_dir"])).values() for path in paths
        ],
    log:
        f"{config['demo_dir']}/demo.log",
    conda:
        "../envs/d2lv.yaml"
    params:
        out=lambda wildcards, output: Path(output.ground_truth).parent,
    shell:
        "d2lv demo --quiet {params.out:q} 2> {log:q}"
