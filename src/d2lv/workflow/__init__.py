"""What the Snakefile reads when it is parsed: the run's :class:`Plan`, the benchmark's systems, and the
options each rule passes to its ``d2lv`` subcommand.

The rules hold no planning logic: ``rules/common.smk`` builds one :class:`Plan` from the config and every
rule reads it. Parsing imports no faiss, torch, h5py or pdqhash (a test checks), as every re-run and every
cluster job parses the Snakefile again.
"""

from d2lv.workflow.bench import BENCH_STEPS, UnknownStepError, bench_report_options, bench_systems, check_steps
from d2lv.workflow.commands import flags, path_option, repository_root, snakemake_command
from d2lv.workflow.plan import Plan, trained_descriptor, trained_detector
from d2lv.workflow.sets import EmptySetError, fit_shards, list_set, shard_plan

__all__ = [
    "BENCH_STEPS", "EmptySetError", "Plan", "UnknownStepError", "bench_report_options", "bench_systems",
    "check_steps", "fit_shards", "flags", "list_set", "path_option", "repository_root", "shard_plan",
    "snakemake_command", "trained_descriptor", "trained_detector",
]
