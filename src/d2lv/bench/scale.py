"""``d2lv bench scale``: how accuracy and costs change as the collection grows.

One fixed benchmark (its queries and references, from ``bench make``) is run at several collection
sizes, e.g. 1,000, 5,000 and 20,000 references: its own references plus distractors, new pictures no
query copies (:mod:`d2lv.synth.distractors`, or a folder of the user's). Each setting is a full
workflow run at the default configuration (plus the config files given); its Snakemake
``benchmark:`` files give the job-seconds of the query side (every job of the ``queries`` set and its
crops) and of the reference side (every job of the ``references`` set, and the collection-wide index
and whitening jobs). The merge's calibration is in neither: it is model fitting, the same at every size.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from d2lv import workflow
from d2lv.bench.systems import read_stage_timings
from d2lv.io import isc, tables
from d2lv.io.isc import GROUND_TRUTH_FILE, QUERY_DIR, REFERENCE_DIR
from d2lv.io.views import query_of
from d2lv.local.params import RecallParams

QUERY_SETS = ("queries", "queries_crops")
#: Reference-side rules that run once for the whole collection (not per shard of a set).
COLLECTION_RULES = ("local_train", "local_add", "local_merge", "descriptor_whitening")
_TRAINED = re.compile(r"trained (\d+) lists on (\d+) descriptors")


@dataclass(frozen=True)
class Setting:
    references: int  # the benchmark's own and distractors
    shard_size: int

    @property
    def name(self) -> str:
        return f"{self.references} references"


def link_folder(folder: Path, files: Sequence[Path]) -> None:
    """Symbolic links to ``files`` in ``folder`` (kept where they exist already)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / path.name
        if not target.exists():
            target.symlink_to(Path(path).resolve())


def prepare(bench: Path, distractors: Sequence[Path], setting: Setting, out: Path) -> Path:
    """The setting's reference folder: the benchmark's references and as many distractors as it needs."""
    own = sorted((bench / REFERENCE_DIR).iterdir())
    if setting.references > len(own) + len(distractors):
        raise ValueError(f"{setting.name}: {len(own)} references and {len(distractors)} distractors are too few")
    references = out / f"{setting.references}-references" / "references"
    link_folder(references, own)
    link_folder(references / "distractors", distractors[: setting.references - len(own)])
    return references


def _command(bench: Path, references: Path, setting: Setting, results: Path, cores: str,
             configfiles: Sequence[str], dry_run: bool = False) -> list[str]:
    return workflow.snakemake_command(
        "all", cores=cores, configfiles=list(configfiles), queries=bench / QUERY_DIR, references=references,
        results=results, ground_truth=bench / GROUND_TRUTH_FILE, shard_size=setting.shard_size, dry_run=dry_run)


def run_setting(bench: Path, references: Path, setting: Setting, results: Path, cores: str,
                configfiles: Sequence[str]) -> dict[str, float]:
    """Plan (``snakemake -n -q``), then run, ``setting`` into ``results``: wall seconds of each."""
    timed = {}
    for name, dry_run in (("planning_seconds", True), ("wall_seconds", False)):
        start = time.perf_counter()
        subprocess.run(_command(bench, references, setting, results, cores, configfiles, dry_run),
                       cwd=workflow.repository_root(), check=True, stdout=subprocess.DEVNULL if dry_run else None)
        timed[name] = time.perf_counter() - start
    return timed


def candidate_recall(results: Path, ground_truth: pd.DataFrame) -> float:
    """Share of copy queries whose true reference is among the local recall's candidates of either query view
    (the whole query, its crops): what local verification gets to see."""
    local = results / "work" / "local"
    candidate_tables = [path for view in QUERY_SETS for path in sorted(local.glob(f"{view}/candidates/*.parquet"))]
    pairs = tables.read_pair_keys(candidate_tables)
    pairs = pairs.assign(query_id=pairs.query_id.map(query_of))
    copies = (ground_truth.reference_id != "").sum()
    return pairs.query_id[isc.is_positive(pairs, ground_truth)].nunique() / copies if copies else float("nan")


def index_shape(results: Path) -> dict[str, int]:
    """The local index's descriptors, inverted lists and training sample, from the training job's log."""
    import faiss

    from d2lv.local.index import index_bytes, read_index

    path = results / "work" / "local" / "index" / "merged.faiss"
    ivf = faiss.extract_index_ivf(read_index(path))
    trained = _TRAINED.search((results / "logs" / "local_train.log").read_text())
    return {"index_descriptors": int(ivf.ntotal), "index_lists": int(ivf.nlist),
            "training_sample": int(trained.group(2)) if trained else 0, "index_bytes": index_bytes(path)}


def measure(results: Path, setting: Setting, n_queries: int, ground_truth: pd.DataFrame) -> dict[str, object]:
    """One row of the scale table, from a finished run's benchmark files, metrics and index."""
    timings = read_stage_timings(results / "benchmarks").set_index("rule")
    sets = pd.Series([rule.partition("/")[2] for rule in timings.index], index=timings.index)
    query_side = timings.seconds[sets.isin(QUERY_SETS)].sum()
    reference_side = timings.seconds[(sets == "references") | timings.index.isin(COLLECTION_RULES)].sum()
    metrics = pd.read_json(results / "metrics.json", typ="series")
    shape = index_shape(results)
    return {
        "setting": setting.name, "references": setting.references, "shard_size": setting.shard_size,
        "reference_shards": sum(1 for _ in (results / "work" / "manifests" / "references").glob("*.parquet")),
        "query_seconds_per_query": query_side / n_queries,
        "reference_seconds_per_reference": reference_side / setting.references,
        "local_candidate_recall": candidate_recall(results, ground_truth),
        "micro_ap": metrics.micro_ap, "recall_at_p90": metrics.recall_at_p90,
        "index_bytes_per_reference": shape.pop("index_bytes") / setting.references, **shape,
        "peak_rss_mb": timings.max_rss_mb.max(),
    }


def scale_report(table: pd.DataFrame, out: Path) -> None:
    """``scale.md`` (the table, with ratios to the smallest setting), ``scale.parquet`` and the log-log plot."""
    from d2lv.bench.markdown import markdown_table

    base = table.iloc[0]
    table = table.assign(
        query_cost_vs_first=table.query_seconds_per_query / base.query_seconds_per_query,
        reference_cost_vs_first=table.reference_seconds_per_reference / base.reference_seconds_per_reference,
        micro_ap_vs_first=table.micro_ap - base.micro_ap,
        candidate_recall_vs_first=table.local_candidate_recall - base.local_candidate_recall)
    table.to_parquet(out / "scale.parquet", index=False)
    (out / "scale.md").write_text(markdown_table(table) + "\n\n![cost growth](scale.png)\n")
    _plot(table, out / "scale.png")


def _plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for column, label in [("query_seconds_per_query", "query side, job-s per query"),
                          ("reference_seconds_per_reference", "reference side, job-s per reference")]:
        ax.loglog(table.references, table[column], "o-", label=label)
    ax.loglog(table.references, table.wall_seconds / table.references, "s--", label="wall s per reference")
    ax.set(xlabel="references", ylabel="seconds", title="Cost against collection size (d2lv bench scale)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_scale(bench: Path, distractors: Sequence[Path], out: Path, sizes: Sequence[int], shard_size: int,
              cores: str, configfiles: Sequence[str]) -> pd.DataFrame:
    """Run the benchmark folder ``bench`` at each collection size of ``sizes`` and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    ground_truth = isc.read_ground_truth(bench / GROUND_TRUTH_FILE)
    rows = []
    for setting in (Setting(n, shard_size) for n in sorted(sizes)):
        references = prepare(bench, distractors, setting, out)
        results = references.parent / "results"
        timed = run_setting(bench, references, setting, results, cores, configfiles)
        rows.append({**measure(results, setting, len(ground_truth), ground_truth), **timed,
                     "nprobe": RecallParams.from_config(_layered_config(configfiles)).nprobe})
        scale_report(pd.DataFrame(rows), out)
    return pd.DataFrame(rows)


def _layered_config(configfiles: Sequence[str]) -> dict:
    """config.yaml with ``configfiles`` layered over it, key by key, as Snakemake layers them."""
    from snakemake.utils import update_config

    config = yaml.safe_load((workflow.repository_root() / "config.yaml").read_text())
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    return config
