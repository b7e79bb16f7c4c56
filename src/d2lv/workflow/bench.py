"""The benchmark's systems: what each one predicts, which workflow steps it pays for, what it stores.

The Snakefile checks :data:`BENCH_STEPS` against its rules when it is parsed (:func:`check_steps`), so a
renamed rule stops the parse instead of silently dropping its cost from the timings.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from d2lv.errors import D2lvError
from d2lv.workflow.plan import Plan

_INDEX_STEPS = "local_train,local_add,local_merge"
_LOCAL_STEPS = f"manifest,sift,{_INDEX_STEPS},local_recall/queries"
_HASH_STEPS = "manifest,pdq_hash/queries,pdq_hash/references,pdq_gather"
#: The workflow steps each benchmark system pays for: rules, or ``rule/view`` (one query view's share of a
#: rule); the merged systems pay for every rule, calibration and detector training included.
BENCH_STEPS = {
    "PDQ": f"{_HASH_STEPS},bench_pdq_match",
    "CNN": "manifest,bench_cnn_extract,bench_cnn_search",
    "local votes": _LOCAL_STEPS,
    "local": f"{_LOCAL_STEPS},verify/queries",
    "crop": f"manifest,sift,train_detector,detect/queries,{_INDEX_STEPS},local_recall/queries_crops,"
            "verify/queries_crops",
    "global": "manifest,descriptor_extract,descriptor_whitening,descriptor_whiten,descriptor_gather,"
              "descriptor_search/queries",
    "hash": f"{_HASH_STEPS},pdq_hash/queries_crops,train_detector,detect/queries,pdq_search/queries",
    "merged": f"manifest,sift,{_INDEX_STEPS},local_recall,verify,descriptor_extract,descriptor_whitening,"
    "descriptor_whiten,descriptor_gather,descriptor_search,pdq_hash,pdq_gather,pdq_search,train_detector,detect,"
    "make_calibration,fit_merge,matches",
}


class UnknownStepError(D2lvError):
    """A benchmark system that names a step no rule of the workflow runs (a renamed rule would silently drop
    its cost from the timings)."""


def check_steps(steps: Mapping[str, str], rules: Sequence[str]) -> None:
    """Check that every step of ``steps`` (system -> comma-separated ``rule`` or ``rule/view``) names a rule.

    Raises:
        UnknownStepError: naming the system and the step.
    """
    known = set(rules)
    for system, listed in steps.items():
        unknown = [step for step in listed.split(",") if step.split("/")[0] not in known]
        if unknown:
            raise UnknownStepError(f"benchmark system {system!r} pays for {unknown}, which no rule of the workflow "
                                   f"runs; rename the step in d2lv.workflow.bench.BENCH_STEPS")


def _shards_glob(files: Sequence[str]) -> str:
    """Every per-shard table of the folder of ``files``."""
    return os.path.join(os.path.dirname(files[0]), "*.parquet")


def bench_systems(plan: Plan, input: Any) -> list[tuple[str, str, str, list[str]]]:
    """Each system of the benchmark report: (name, predictions, workflow steps, stored index files).

    ``input`` is rule bench_report's (named inputs as attributes); predictions are a table, with the score
    column after ``#`` and the candidates' column that ranks them after ``@`` where it is not ``score``.
    """
    index = [*input.local_index, *input.local_features]
    systems = [
        ("PDQ", input.pdq, BENCH_STEPS["PDQ"], list(input.pdq_store)),
        ("CNN global (ImageNet GeM)", f"{input.cnn}#similarity", BENCH_STEPS["CNN"], list(input.cnn_store)),
        ("d2lv local votes (recall only)", f"{_shards_glob(input.local_candidates)}#votes",
         BENCH_STEPS["local votes"], list(input.local_index)),
        ("d2lv local branch", f"{input.matches}#verify_local_score@local_votes", BENCH_STEPS["local"], index),
    ]
    if plan.detect:
        systems.append(("d2lv crop branch", f"{input.matches}#verify_local_crop_score@crop_votes",
                        BENCH_STEPS["crop"], index))
    if plan.descriptor:
        systems.append(("d2lv global branch", f"{_shards_glob(input.global_candidates)}#similarity",
                        BENCH_STEPS["global"], list(input.global_store)))
    if plan.pdq:
        systems.append(("d2lv hash branch", f"{_shards_glob(input.pdq_candidates)}#score", BENCH_STEPS["hash"],
                        list(input.pdq_store)))
    stored = [*index, *input.global_store, *(input.pdq_store if plan.pdq else [])]
    if plan.calibrated:
        systems.append(("d2lv sum merge", f"{input.matches}#score_sum", BENCH_STEPS["merged"], stored))
    systems.append((f"d2lv full ({plan.merge_mode} merge)", input.matches, BENCH_STEPS["merged"], stored))
    return systems


def bench_report_options(plan: Plan, input: Any) -> str:
    """``d2lv bench report``'s ``--system``, ``--stages`` and ``--storage`` options for every system, quoted."""
    return " ".join(
        f"--system {shlex.quote(f'{name}={predictions}')} --stages {shlex.quote(f'{name}={stages}')}"
        f" --storage {shlex.quote(name + '=' + ','.join(storage))}"
        for name, predictions, stages, storage in bench_systems(plan, input)
    )
