"""The skipped-inputs report: every file under an input folder that could not (fully) take part, and why.

Its ``stage`` says where the file was set aside: ``listing`` (not decoded at all: a format d2lv does not
read, a hidden or AppleDouble file, a hidden folder), ``manifest`` (it did not decode) or ``local``
(too few local features for the local branch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from d2lv.io import atomic, tables
from d2lv.io.images import image_id
from d2lv.local.store import FeatureStore


def listed(set_name: str, refused: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The files and folders that the listing of a set's folder set aside, with the reason."""
    return pd.DataFrame({"set": set_name, "id": [image_id(path) for path, _ in refused],
                         "path": [str(path) for path, _ in refused], "stage": "listing",
                         "reason": [reason for _, reason in refused]}, columns=tables.SKIPPED.names)


def collect(set_name: str, manifests: Sequence[str | os.PathLike], stores: Sequence[str | os.PathLike],
            min_keypoints: int, refused: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """Files the listing set aside (``refused``: path and reason), images a manifest marked unusable
    (excluded everywhere), and images with too few local features for the local branch to match them."""
    frame = tables.read_tables(manifests, tables.MANIFEST)
    bad = frame[frame.status != "ok"]
    rows = [listed(set_name, refused)] if refused else []
    rows.append(pd.DataFrame({"set": set_name, "id": bad.id, "path": bad.path, "stage": "manifest",
                              "reason": bad.reason}))
    paths = dict(zip(frame.id, frame.path))
    for path in stores:
        store = FeatureStore(path)
        counts = store.counts()
        low = [(key, n) for key, n in zip(store.ids, counts) if n < min_keypoints]
        rows.append(pd.DataFrame({
            "set": set_name,
            "id": [key for key, _ in low],
            "path": [paths.get(key, "") for key, _ in low],
            "stage": "local",
            "reason": [f"too few SIFT keypoints ({n} < {min_keypoints}); the local branch cannot match it"
                       for _, n in low],
        }))
    return pd.concat(rows, ignore_index=True)[tables.SKIPPED.names]


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """``skipped.csv``, by set, stage and id; written whole or not at all."""
    with atomic.replacing(path) as partial:
        frame.sort_values(["set", "stage", "id", "path"]).to_csv(partial, index=False)
