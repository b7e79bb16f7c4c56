"""Options of the hash branch (kept apart from :mod:`d2lv.pdq.hashes`, so the workflow reads them without
importing faiss or pdqhash)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.options import Options, option

#: Hamming distances (of 256 bits): unrelated images lie near the middle; ThreatExchange calls 31 or fewer a match.
UNRELATED_DISTANCE, MATCH_DISTANCE = 128, 31
#: PDQ quality (0-100) from which a hash is trusted in full: below it an image is too flat for its hash to say
#: much (PDQ's own guidance), and two near-blank images hash alike.
RELIABLE_QUALITY = 50


@dataclass(frozen=True)
class PdqStageParams(Options):
    """Whether the workflow runs the hash branch (read by the workflow, not a subcommand)."""

    section: ClassVar[str] = "pdq"
    enabled: bool = option(True, "run the hash branch (PDQ hashes, nearest references, local verification of its "
                           "candidates) and write the references' hashes in ThreatExchange's format (pdq_hashes.csv)")


@dataclass(frozen=True)
class PdqParams(Options):
    """The hash branch: each query view's nearest references by PDQ Hamming distance, verified like the others."""

    section: ClassVar[str] = "pdq"
    topk: int = option(5, "candidates kept per query (each verified locally)", minimum=1)
    max_distance: int = option(90, "Hamming distance (of 256 bits) above which a reference is no candidate; "
                               f"unrelated images lie near {UNRELATED_DISTANCE}, ThreatExchange calls "
                               f"{MATCH_DISTANCE} a match", minimum=0, maximum=256)
    min_quality: int = option(0, "images whose PDQ quality (0-100) is below this take no part", minimum=0, maximum=100)
