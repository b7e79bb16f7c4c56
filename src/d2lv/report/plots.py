"""Plots shared by the run report and the benchmark report: precision-recall curves, recall@1 per family."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from d2lv.evaluation.metrics import PRCurve


def plot_pr_curves(curves: Mapping[str, PRCurve], path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in curves.items():
        ax.plot(np.concatenate([[0.0], curve.recall]), np.concatenate([[1.0], curve.precision]), label=name)
    ax.axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (micro)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_family_recall(families: pd.DataFrame, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(families)), 4.5))
    families.plot.bar(ax=ax, width=0.8)
    ax.set(ylabel="recall@1", ylim=(0, 1.05), title="recall@1 per recipe family")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
