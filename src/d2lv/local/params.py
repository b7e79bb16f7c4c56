"""Options of the local branch: SIFT extraction, the faiss index, recall, candidate selection, verification.

Kept apart from the modules that do the work so that the workflow can read them
at parse time without importing OpenCV or faiss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from d2lv.device import DEVICES
from d2lv.options import Options, option

GEOMETRIES = ("homography", "affine", "none")
CANDIDATE_MODES = ("topk", "single")


@dataclass(frozen=True)
class SiftParams(Options):
    """RootSIFT extraction."""

    section: ClassVar[str] = "local.sift"
    short_side: int = option(300, "scale so the short side is this (the original method's 300, downscaling only)",
                             minimum=16)
    max_upscale: float = option(2.0, "upsample an image whose short side is below short_side at most this many times "
                                "(1: never)", minimum=1)
    max_keypoints: int = option(600, "keep the strongest keypoints", minimum=1)
    low_texture_keypoints: int = option(100, "an image with fewer keypoints (a graphic, a gradient, paper) is "
                                        "detected again at a lower contrast threshold (0: never)", minimum=0)
    low_texture_contrast: float = option(0.01, "... this contrast threshold (OpenCV's default: 0.04)",
                                         exclusive_minimum=0)


@dataclass(frozen=True)
class UsableParams(Options):
    """Which images have enough local features to take part (read by ``d2lv skipped``)."""

    section: ClassVar[str] = "local.sift"
    min_keypoints: int = option(10, "images with fewer keypoints than this are reported in skipped.csv (stage "
                                "\"local\")", minimum=0)


@dataclass(frozen=True)
class ThreadParams(Options):
    """Threads of the local branch's faiss jobs (the workflow's ``threads:``)."""

    section: ClassVar[str] = "local"
    threads: int = option(2, "faiss threads per local index or search job", minimum=1)


@dataclass(frozen=True)
class IndexParams(Options):
    """The one local index over every reference descriptor: trained once, filled per shard, merged."""

    section: ClassVar[str] = "local"
    factory: str = option("auto", "faiss factory string of an IVF index (auto: IVF<about N/256>,PQ16, lists of "
                          "a fixed length, with an HNSW quantiser from 8192 lists on; plain Flat codes for a "
                          "collection too small to train a product quantiser)",
                          key="local.index_factory")
    train_descriptors: int = option(1_000_000, "at most this many descriptors in the training sample", minimum=1)


@dataclass(frozen=True)
class IndexDevice(Options):
    """Where faiss trains and searches the local index."""

    section: ClassVar[str] = "local"
    device: str = option("auto", "auto (every GPU faiss sees; none with a CPU-only faiss), cpu or cuda",
                         choices=DEVICES)


@dataclass(frozen=True)
class RecallParams(Options):
    """kNN search of query descriptors and votes per reference."""

    section: ClassVar[str] = "local"
    knn: int = option(3, "neighbours per query descriptor", minimum=1)
    max_distance: float = option(0.2, "squared L2 between RootSIFT vectors (0..2) above which a neighbour casts "
                                 "no vote", exclusive_minimum=0)
    min_votes: int = option(3, "drop references with fewer votes", minimum=1)
    nprobe: int = option(16, "inverted lists visited per search", minimum=1)


@dataclass(frozen=True)
class CandidateParams(Options):
    """Each query's final local candidates."""

    section: ClassVar[str] = "local"
    topk: int = option(10, "references kept per query (mode topk)", minimum=1)
    mode: str = option("topk", "topk: best references by votes; single: the original method's one-candidate rule",
                       choices=CANDIDATE_MODES)


@dataclass(frozen=True)
class SingleCandidateRule(Options):
    """The original imgFp rule (mode single): keep one reference per query, only when it clearly wins."""

    section: ClassVar[str] = "local.single"
    single_min_votes: int = option(3, "single: the winner needs strictly more votes than this, and than the "
                                   "runner-up", key="local.single.min_votes", minimum=0)
    single_min_votes_alone: int = option(5, "single: ... or more than this when no other reference got votes",
                                         key="local.single.min_votes_alone", minimum=0)
    single_max_mean_distance: float = option(0.35, "single: and a mean squared L2 below this",
                                             flags=("--single-max-distance",), key="local.single.max_mean_distance",
                                             exclusive_minimum=0)


@dataclass(frozen=True)
class VerifyParams(Options):
    """2-NN ratio matching, mirrored pass and geometric verification."""

    section: ClassVar[str] = "local.verify"
    ratio: float = option(0.745, "Lowe ratio: keep a match if d1 < ratio * d2 (the original's 1.8 d1^2 < d2^2)",
                          exclusive_minimum=0, maximum=1)
    mirrored: bool = option(True, "also match the left-right mirrored reference and keep the better pass",
                            flags=("--mirror",))
    inverted: bool = option(True, "also match the query as the negative of its image (an inverted or solarized "
                            "copy keeps its keypoints, but none matches as it is) and keep the best pass",
                            flags=("--invert",))
    probe_stride: int = option(4, "match every Nth query keypoint first, and the rest only if that probe finds "
                               "... (1: match all at once)", minimum=1)
    probe_matches: int = option(2, "... at least this many ratio-test matches, in each pass", minimum=0)
    geometry: str = option("homography", "transform fitted with MAGSAC++; none counts every ratio-test match",
                           choices=GEOMETRIES)
    ransac_threshold: float = option(4.0, "inlier threshold in pixels at the SIFT extraction scale",
                                     exclusive_minimum=0)
