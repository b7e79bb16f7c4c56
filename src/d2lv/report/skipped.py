"""The skipped-inputs report: every image that could not (fully) take part, and why."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from d2lv.io import tables
from d2lv.local.store import FeatureStore


def collect(set_name: str, manifests: Sequence[str | os.PathLike], stores: Sequence[str | os.PathLike],
            min_keypoints: int) -> pd.DataFrame:
    """Images a manifest marked unusable (excluded everywhere), and images with too
    few local features for the local branch to match them."""
    frame = tables.read_tables(manifests, tables.MANIFEST)
    bad = frame[frame.status != "ok"]
    rows = [pd.DataFrame({"set": set_name, "id": bad.id, "path": bad.path, "stage": "manifest",
                          "reason": bad.reason})]
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
    frame.sort_values(["set", "stage", "id"]).to_csv(path, index=False)
