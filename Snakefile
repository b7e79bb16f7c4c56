# d2lv: image copy detection, global and local dual retrieval (ISC 2021 matching track).
#
#   snakemake --cores all                                   # the demo set, end to end
#   snakemake --cores 8 --config queries=Q references=R results=OUT [ground_truth=GT.csv]
#   snakemake --report report.html                          # metrics, PR curve, matched pairs drawn
#
# Every rule calls one `d2lv` subcommand; see `d2lv --help`.

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/manifest.smk"
include: "rules/detect.smk"
include: "rules/local.smk"
include: "rules/descriptor.smk"
include: "rules/pdq.smk"
include: "rules/merge.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"
include: "rules/bench.smk"


d2lv_workflow.check_steps(d2lv_workflow.BENCH_STEPS, [rule.name for rule in workflow.rules])


rule all:
    default_target: True
    input:
        PLAN.final_outputs(),
