"""Options of the hash branch (kept apart from :mod:`d2lv.pdq.hashes`, so the workflow reads them without
importing faiss or pdqhash)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.options import Options, option


@dataclass(frozen=True)
class PdqParams(Options):
    """The hash branch: each query view's nearest references by PDQ Hamming distance, verified like the others."""

    section: ClassVar[str] = "pdq"
    topk: int = option(5, "candidates kept per query (each verified locally)")
    max_distance: int = option(90, "Hamming distance (of 256 bits) above which a reference is no candidate; "
                               "unrelated images lie near 128, ThreatExchange calls 31 a match")
    min_quality: int = option(0, "images whose PDQ quality (0-100) is below this take no part")
