"""``d2lv bench scale``: how the pipeline's costs grow with the number of shards and of references.

One fixed benchmark (queries and their references, made by ``bench make`` from part of a photo pool:
see ``d2lv bench scale``), run at several settings:

* ``base``: the references at ``shard_size``;
* ``shards x4``: the same references cut into four times as many shards (the queries keep theirs:
  ``query_shard_size``);
* ``refs x2``, ``refs x4``: the references plus distractors, photos of the rest of the pool that no
  query was made from, at ``shard_size``.

Each setting is a full workflow run; its Snakemake ``benchmark:`` files give the job-seconds of the
query side (every job of the ``queries`` set and its crops) and of the reference side (every job of
the ``references`` set, and the local index's training and merge and the whitening). The detector is
trained once, in the first setting, and reused: model fitting is not what this measures.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from d2lv import workflow
from d2lv.bench.systems import read_stage_timings
from d2lv.io import isc
from d2lv.io.isc import GROUND_TRUTH_FILE, QUERY_DIR, REFERENCE_DIR
from d2lv.local.index import index_bytes

QUERY_SETS = ("queries", "queries_crops")
#: Reference-side rules that run once for the whole collection (not per shard of a set).
COLLECTION_RULES = ("local_train", "local_add", "local_merge", "descriptor_whitening")


@dataclass(frozen=True)
class Setting:
    name: str
    shard_size: int  # of the references; the queries keep the base setting's (query_shard_size)
    n_distractors: int


def settings(shard_size: int, n_references: int, n_pool: int) -> list[Setting]:
    """The four settings, as far as the distractor pool goes (x4 needs three times the references)."""
    chosen = [Setting("base", shard_size, 0), Setting("shards x4", max(1, shard_size // 4), 0)]
    for factor in (2, 4):
        if (factor - 1) * n_references <= n_pool:
            chosen.append(Setting(f"refs x{factor}", shard_size, (factor - 1) * n_references))
    return chosen


def link_folder(folder: Path, files: Sequence[Path]) -> None:
    """Symbolic links to ``files`` in ``folder`` (kept where they exist already)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / path.name
        if not target.exists():
            target.symlink_to(Path(path).resolve())


def prepare(bench: Path, distractors: Sequence[Path], setting: Setting, out: Path) -> Path:
    """The setting's reference folder: the benchmark's references and its share of the distractors."""
    references = out / setting.name.replace(" ", "_") / "references"
    link_folder(references, sorted((bench / REFERENCE_DIR).iterdir()))
    link_folder(references / "distractors", distractors[: setting.n_distractors])
    return references


def run_setting(bench: Path, references: Path, setting: Setting, results: Path, cores: str,
                configfiles: Sequence[str], detector: Path | None, query_shard_size: int) -> None:
    """One full workflow run of ``setting`` into ``results`` (with the detector weights of an earlier one).

    The models fitted on the references learn from every reference shard (``fit_images``), so that each
    setting fits them on its whole collection whatever the number of shards.
    """
    n_references = len(workflow.list_set(references, "references", None).images)  # as the workflow plans
    overlay = {"fit_images": max(n_references, 1), **({"detect": {"weights": str(detector)}} if detector else {})}
    overlay_file = results.parent / "overlay.yaml"
    overlay_file.write_text(yaml.safe_dump(overlay))
    command = workflow.snakemake_command(
        "all", cores=cores, configfiles=[*configfiles, str(overlay_file)], queries=bench / QUERY_DIR,
        references=references, results=results, ground_truth=bench / GROUND_TRUTH_FILE,
        shard_size=setting.shard_size, query_shard_size=query_shard_size)
    subprocess.run(command, cwd=workflow.repository_root(), check=True)


def measure(results: Path, setting: Setting, n_queries: int, n_references: int) -> dict[str, object]:
    """One row of the scale table, from a finished run's benchmark files and metrics."""
    timings = read_stage_timings(results / "benchmarks").set_index("rule")
    sets = np.array([rule.partition("/")[2] for rule in timings.index])
    query_side = timings.seconds[np.isin(sets, QUERY_SETS)].sum()
    reference_side = timings.seconds[(sets == "references") | timings.index.isin(COLLECTION_RULES)].sum()
    metrics = pd.read_json(results / "metrics.json", typ="series")
    return {
        "setting": setting.name, "references": n_references, "shard_size": setting.shard_size,
        "reference_shards": sum(1 for _ in (results / "work" / "manifests" / "references").glob("*.parquet")),
        "query_seconds_per_query": query_side / n_queries,
        "reference_seconds_per_reference": reference_side / n_references,
        "index_bytes_per_reference": index_bytes(results / "work" / "local" / "index" / "merged.faiss")
        / n_references,
        "peak_rss_mb": timings.max_rss_mb.max(),
        "micro_ap": metrics.micro_ap, "recall_at_p90": metrics.recall_at_p90,
    }


def scale_report(table: pd.DataFrame, out: Path) -> None:
    """``scale.md`` (the table, with ratios to ``base``), ``scale.parquet`` and the log-log ``scale.png``."""
    from d2lv.bench.markdown import markdown_table

    base = table.iloc[0]
    table = table.assign(query_cost_vs_base=table.query_seconds_per_query / base.query_seconds_per_query,
                         micro_ap_vs_base=table.micro_ap - base.micro_ap)
    table.to_parquet(out / "scale.parquet", index=False)
    (out / "scale.md").write_text(markdown_table(table) + "\n\n![cost growth](scale.png)\n")
    _plot(table, out / "scale.png")


def _plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grown = table[table.setting != "shards x4"]
    sharded = table[table.setting == "shards x4"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for column, label in [("query_seconds_per_query", "query side, s per query"),
                          ("reference_seconds_per_reference", "reference side, s per reference")]:
        line, = ax.loglog(grown.references, grown[column], "o-", label=f"{label}, more references")
        ax.loglog(sharded.references, sharded[column], "x", color=line.get_color(), markersize=10,
                  label=f"{label}, 4x shards")
    ax.set(xlabel="references", ylabel="job-seconds", title="Cost growth (d2lv bench scale)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_scale(bench: Path, distractors: Sequence[Path], out: Path, shard_size: int, cores: str,
              configfiles: Sequence[str]) -> pd.DataFrame:
    """Run every setting of the benchmark folder ``bench`` (from ``bench make``) and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    n_queries = len(isc.read_id_csv(bench / GROUND_TRUTH_FILE))
    n_references = sum(1 for _ in (bench / REFERENCE_DIR).iterdir())
    rows, detector = [], None
    for setting in settings(shard_size, n_references, len(distractors)):
        references = prepare(bench, distractors, setting, out)
        results = references.parent / "results"
        run_setting(bench, references, setting, results, cores, configfiles, detector, shard_size)
        detector = detector or results / "work" / "detect" / "detector.pt"
        rows.append(measure(results, setting, n_queries, n_references + setting.n_distractors))
    table = pd.DataFrame(rows)
    scale_report(table, out)
    return table
