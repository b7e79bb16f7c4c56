"""Options of the merge: how pairs are scored, how the calibrated model is fitted, what is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.options import Options, option

MODES = ("sum", "calibrated")
#: Query views verified by the pipeline: the whole query, and its detected copy region.
VERIFICATION_BRANCHES = ("local", "local_crop")


@dataclass(frozen=True)
class MergeParams(Options):
    """The merge of every branch into one score per pair."""

    section: ClassVar[str] = "merge"
    mode: str = option("calibrated", "calibrated: the fitted model's probability (needs --model); sum: the "
                       "original method's sum of verified counts", choices=MODES)


@dataclass(frozen=True)
class FitParams(Options):
    """The calibrated merge's logistic regression."""

    section: ClassVar[str] = "merge"
    regularisation: float = option(1.0, "inverse L2 strength (scikit-learn's C)", exclusive_minimum=0)


@dataclass(frozen=True)
class CalibrationParams(Options):
    """The calibration set: edited copies of the references, labelled by construction."""

    section: ClassVar[str] = "merge"
    queries: int = option(200, "edited copies to make (each a positive, its other candidates negatives)",
                          key="merge.calibration_queries", minimum=1)
    near_duplicates: float = option(0.25, "share of the copies that copy half a reference, whose other half "
                                    "becomes a near-duplicate negative (a pseudo-reference)", minimum=0, maximum=1)
    graphics: float = option(0.25, "share of the copies that copy a tile of a synthetic graphic (gradient, shapes, "
                             "chart, text card, UI layout, paper), its other tile a near-duplicate negative",
                             key="merge.calibration_graphics", minimum=0, maximum=1)
    seed: int = option(0, "seeds the choice of sources, backdrops and edits")


@dataclass(frozen=True)
class OutputParams(Options):
    """What matches.csv keeps."""

    section: ClassVar[str] = "merge"
    max_results_per_query: int = option(10, "keep each query's N best pairs", minimum=1)
