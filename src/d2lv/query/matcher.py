"""Matching one image against a built collection, in one process, as the workflow matches a query.

:class:`Matcher` loads a collection once (:mod:`d2lv.query.collection`: the detector, the descriptor
network and whitening, the merged local index with its lists memory-mapped, the reference feature
stores held open and read lazily, the PDQ hashes, the fitted merge) and runs the query side on each
image with the functions the workflow's subcommands call: detection and crops, SIFT of every view,
local recall, the global and hash branches, verification of every candidate in every view, the merge.
Each of those computes a query's numbers without regard to the other queries it runs with (one image per
forward pass, exact rescoring of faiss' shortlists, row-wise products), so an image's scores here are the
workflow's for the same image, to the last bit (a test holds them to ``matches.parquet``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Collection as Ids
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from d2lv.descriptor.params import BackboneParams, BackgroundParams, RegionParams, SearchParams
from d2lv.detect.params import BoxParams, DetectorParams
from d2lv.device import QUERY_TORCH_THREADS
from d2lv.io import tables
from d2lv.io.images import Box, DecodeParams, to_gray
from d2lv.local.params import (
    CandidateParams,
    IndexDevice,
    RecallParams,
    SiftParams,
    SingleCandidateRule,
    ThreadParams,
    VerifyParams,
)
from d2lv.local.store import FeatureStore, image_features
from d2lv.merge.params import MergeParams, OutputParams
from d2lv.pdq.params import PdqParams
from d2lv.query.collection import Collection

#: The id a query image gets when its caller names none.
QUERY_ID = "query"
#: Where Ultralytics keeps its settings in a query process (the workflow keeps them in its work folder).
ULTRALYTICS_CONFIG = Path(tempfile.gettempdir()) / "d2lv-ultralytics-config"


@dataclass(frozen=True)
class Answer:
    """One image's answer: its detected boxes and every verified candidate, best first."""

    query_id: str
    boxes: list[tuple[Box, float]]
    #: one row per verified pair, the columns of matches.parquet (``score``, ``rank``, each branch's evidence)
    pairs: pd.DataFrame
    #: reference id -> the crop whose verification speaks for the pair (the crop view's best)
    crop_of: dict[str, str]

    def top(self, n: int) -> pd.DataFrame:
        """The ``n`` best pairs (ISC's matches)."""
        return self.pairs[self.pairs["rank"] <= n]

    def without(self, withdrawn: Ids[str]) -> Answer:
        """The answer without pairs of withdrawn references, ranked again (the others' scores are unchanged)."""
        if not withdrawn or not self.pairs.reference_id.isin(withdrawn).any():
            return self
        kept = self.pairs[~self.pairs.reference_id.isin(withdrawn)].reset_index(drop=True)
        kept["rank"] = np.arange(1, len(kept) + 1)
        return dataclasses.replace(self, pairs=kept)


@dataclass
class ReferenceSide:
    """What a query is matched against: a collection's references, or one image (:meth:`Matcher.compare`)."""

    #: the local index (every reference descriptor, ids = catalogue numbers) and its catalogue
    index: object
    catalogue: pd.DataFrame
    #: the references' SIFT features, for verification
    stores: FeatureStore
    #: whitened global descriptors (None: no global branch) and the background they are normalised by
    descriptor_ids: list[str] | None = None
    descriptors: np.ndarray | None = None
    background: np.ndarray | None = None
    #: PDQ hashes (None: no hash branch)
    hashes: object | None = None


class Matcher:
    """The query side of a collection, loaded once: :meth:`match` answers one image, :meth:`compare` a pair."""

    def __init__(self, collection: Collection, quiet: bool = True):
        self.collection = collection
        config = collection.config
        self.decode = DecodeParams.from_config(config)
        self.sift = SiftParams.from_config(config)
        self.recall = RecallParams.from_config(config)
        self.candidates, self.single = CandidateParams.from_config(config), SingleCandidateRule.from_config(config)
        self.verify_params = VerifyParams.from_config(config)
        self.search, self.background_params = SearchParams.from_config(config), BackgroundParams.from_config(config)
        self.grid = RegionParams.from_config(config).regions
        self.pdq = PdqParams.from_config(config)
        self.merge, self.output = MergeParams.from_config(config), OutputParams.from_config(config)
        self.detector = self._detector(config, quiet)
        self.describer, self.whitening = self._describer(config)
        self.model = self._merge_model()
        self.references = self._references(config)

    # ------------------------------------------------------------------ loading

    def _detector(self, config: dict, quiet: bool) -> object | None:
        from d2lv.detect.boxes import Detector

        weights = self.collection.file("detector")
        network = DetectorParams.from_config(config)
        return None if weights is None else Detector(weights, ULTRALYTICS_CONFIG, BoxParams.from_config(config),
                                                     network.image_size, network.device, quiet=quiet)

    def _describer(self, config: dict) -> tuple[object | None, object | None]:
        """The descriptor network and the whitening, where the run has a global branch."""
        if self.collection.file("descriptors") is None:
            return None, None
        from d2lv.descriptor import extract, whitening

        backbone = BackboneParams.from_config(config)
        model = extract.DescriptorModel(
            backbone.backbone, self.collection.file("checkpoint"), device=backbone.device,
            image_size=backbone.image_size or None, threads=QUERY_TORCH_THREADS,
            head=self.collection.file("head"))
        return model, whitening.read_whitening(self.collection.file("whitening"))

    def _merge_model(self) -> object | None:
        from d2lv.merge import scoring

        path = self.collection.file("model")
        return scoring.load_model(path) if path is not None else None

    def _references(self, config: dict) -> ReferenceSide:
        """The collection's references: the index memory-mapped, the feature stores held open and read lazily."""
        import faiss

        from d2lv.descriptor import store
        from d2lv.local import index
        from d2lv.pdq import hashes

        faiss.omp_set_num_threads(ThreadParams.from_config(config).threads)
        files = self.collection.files
        stores = FeatureStore(files["stores"])
        stores.hold_open()
        side = ReferenceSide(index.open_merged(files["index"][0], IndexDevice.from_config(config).device),
                             tables.read_tables(files["catalogue"], tables.CATALOGUE), stores)
        if self.describer is not None:
            side.descriptor_ids, side.descriptors = store.read_descriptors(files["descriptors"], "reference")
            side.background = store.read_descriptors(files["background"], "reference")[1] if files[
                "background"] else None
        if files["pdq"]:
            side.hashes = hashes.read_hashes(files["pdq"])
        return side

    def image_side(self, rgb: np.ndarray, reference_id: str) -> ReferenceSide:
        """One image as the only reference, described as the workflow describes references (:meth:`compare`)."""
        import faiss

        from d2lv.local import index, sift
        from d2lv.pdq import hashes

        features = self.features([(reference_id, rgb)])
        vectors = sift.dequantize(features.descriptors)
        flat = faiss.IndexIVFFlat(faiss.IndexFlatL2(vectors.shape[1]), vectors.shape[1], 1)
        if len(vectors):  # one list: an exact search over the image's descriptors
            flat.train(vectors)
            flat.add_with_ids(vectors, index.reference_numbers(0, 1).repeat(len(vectors)))
        side = ReferenceSide(flat, pd.DataFrame({"number": index.reference_numbers(0, 1),
                                                 "reference_id": [reference_id]}), features,
                             background=self.references.background)
        if self.describer is not None:
            side.descriptor_ids, side.descriptors = [reference_id], self.describe([rgb])
        if self.references.hashes is not None:
            side.hashes = hashes.hash_images([reference_id], [rgb], progress=False)
        return side

    # ------------------------------------------------------------------ matching

    def match(self, rgb: np.ndarray, query_id: str = QUERY_ID, side: ReferenceSide | None = None) -> Answer:
        """Every verified candidate of one ``HxWx3`` uint8 RGB image among the references of ``side`` (the
        collection's), scored and ranked as the workflow does."""
        from d2lv.detect import boxes as detection
        from d2lv.merge import features

        side = side or self.references
        chosen = self.detector.boxes(rgb) if self.detector is not None else []
        crops = detection.crops(query_id, rgb, chosen)
        stores = {"local": self.features([(query_id, rgb)])}
        if self.detector is not None:
            stores["local_crop"] = self.features(crops)
        local = self._local_candidates(stores["local"], side)
        crop = self._local_candidates(stores["local_crop"], side) if self.detector is not None else None
        global_ = self._global_candidates(query_id, rgb, crops, side) if side.descriptors is not None else None
        pdq = self._pdq_candidates([(query_id, rgb), *crops], side) if side.hashes is not None else None
        proposed = tables.pair_keys([frame for frame in (local, crop, global_, pdq) if frame is not None])
        scores = pd.concat([self._verify(proposed, store, side, branch) for branch, store in stores.items()],
                           ignore_index=True)
        boxes = tables.conform(detection.box_frame({query_id: chosen}), tables.BOXES)
        candidates, best, cropped = features.gather_branches(local, crop, global_, pdq, scores, boxes)
        pairs = features.assemble_matches(candidates, best, self.merge.mode, self.model, cropped)
        crop_of = best[best.branch == "local_crop"].set_index("reference_id").view_id.to_dict()
        return Answer(query_id, chosen, pairs, crop_of)

    def compare(self, a: np.ndarray, b: np.ndarray, a_id: str = "a", b_id: str = "b") -> Answer:
        """Image ``a`` matched as a query against ``b`` as the only reference: the pair's evidence and score
        (under the collection's models; the margins over other candidates are those of a query with one)."""
        return self.match(a, a_id, self.image_side(b, b_id))

    def features(self, images: list[tuple[str, np.ndarray]]) -> FeatureStore:
        """The SIFT features of images (id, RGB), as a store held in memory."""
        found = [image_features(image_id, to_gray(rgb), self.sift) for image_id, rgb in images]
        return FeatureStore.from_features(found, dataclasses.asdict(self.sift))

    def describe(self, images: list[np.ndarray]) -> np.ndarray:
        """Whitened global descriptors of images, one per forward pass (as the workflow describes queries)."""
        from d2lv.descriptor import extract

        raw = self.describer.extract(images, batch_size=extract.QUERY_BATCH_SIZE, progress=False)
        return self.whitening.apply(raw)

    def _local_candidates(self, store: FeatureStore, side: ReferenceSide) -> pd.DataFrame:
        from d2lv.local import recall

        keep = recall.pairs_to_keep(self.candidates.topk, self.candidates.mode)
        pairs = recall.search_index(side.index, side.catalogue, store, self.recall, keep, progress=False)
        selected = recall.select_candidates(pairs, self.candidates.topk, self.candidates.mode, self.single)
        return tables.conform(selected, tables.PAIRS)

    def _global_candidates(self, query_id: str, rgb: np.ndarray, crops: list[tuple[str, np.ndarray]],
                           side: ReferenceSide) -> pd.DataFrame:
        from d2lv.descriptor import regions, search

        views = regions.region_views(query_id, rgb, crops, self.grid) if self.grid else []
        vectors = self.describe([regions.primary_view(rgb, crops), *(image for _, image in views)])
        pairs = search.query_candidates([query_id], vectors[:1], [view_id for view_id, _ in views], vectors[1:],
                                        side.descriptor_ids, side.descriptors, self.search.topk, side.background,
                                        self.background_params, progress=False)
        return tables.conform(pairs, tables.SIMILARITY_PAIRS)

    def _pdq_candidates(self, views: list[tuple[str, np.ndarray]], side: ReferenceSide) -> pd.DataFrame:
        from d2lv.pdq import hashes

        found = hashes.hash_images([view_id for view_id, _ in views], [rgb for _, rgb in views], dihedral=True,
                                   progress=False)
        return tables.conform(hashes.query_candidates(found, side.hashes, self.pdq, progress=False), tables.PDQ_PAIRS)

    def _verify(self, proposed: pd.DataFrame, store: FeatureStore, side: ReferenceSide, branch: str) -> pd.DataFrame:
        from d2lv.io import views
        from d2lv.local import verify

        scores = verify.verify_pairs(views.pairs_in_view(proposed, store.ids), store, side.stores,
                                     self.verify_params, branch, progress=False)
        return tables.conform(scores, tables.SCORES)

