"""Options of the report's pictures of matched pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.options import Options, option


@dataclass(frozen=True)
class ReportParams(Options):
    """Which matched pairs the report draws."""

    section: ClassVar[str] = "report"
    top: int = option(8, "draw the N best-scored pairs", minimum=0)
    near_threshold: int = option(8, "draw the N pairs scored nearest the threshold at precision 0.9 (without "
                                 "ground truth: the median best score)", minimum=0)
