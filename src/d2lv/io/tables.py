"""Parquet table schemas and I/O: one definition per table the pipeline writes.

Every stage reads and writes its tables through :func:`write_table` and
:func:`read_tables`, so column names and types are declared exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from d2lv.errors import InputError
from d2lv.io import atomic

MANIFEST = pa.schema(
    [
        ("id", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("bytes", pa.int64()),
        ("status", pa.string()),  # "ok" or "skipped"
        ("reason", pa.string()),
    ]
)

PAIRS = pa.schema(
    [
        ("query_id", pa.string()),
        ("reference_id", pa.string()),
        ("branch", pa.string()),
        ("votes", pa.int32()),
        ("mean_distance", pa.float32()),
        ("rank", pa.int32()),
    ]
)

#: PDQ pairs (the hash branch, the PDQ baseline): nearest references by Hamming distance over the query's
#: 8 dihedral variants.
PDQ_PAIRS = pa.schema(
    [
        ("query_id", pa.string()),
        ("reference_id", pa.string()),
        ("score", pa.float32()),  # 1 - hamming / 256: 1 for identical hashes, ~0.5 for unrelated images
        ("hamming", pa.int32()),  # min over the query's variants, 0..256
        ("quality", pa.int32()),  # PDQ quality (0..100) of the flatter image of the two; below ~50 unreliable
        ("rank", pa.int32()),  # 1 = best reference of this query
    ]
)

#: Global-descriptor pairs: nearest references by cosine similarity.
SIMILARITY_PAIRS = pa.schema(
    [
        ("query_id", pa.string()),
        ("reference_id", pa.string()),
        ("similarity", pa.float32()),  # cosine similarity of the descriptors, -1..1
        ("rank", pa.int32()),  # 1 = most similar reference of this query
    ]
)

#: The local index's references: faiss id (shard << 32 | row in the shard's feature store) and image id.
CATALOGUE = pa.schema(
    [
        ("number", pa.int64()),
        ("reference_id", pa.string()),
    ]
)

SCORES = pa.schema(
    [
        ("query_id", pa.string()),
        ("reference_id", pa.string()),
        ("branch", pa.string()),
        ("n_matches", pa.int32()),
        ("n_inliers", pa.int32()),
        ("flipped", pa.bool_()),
        ("inverted", pa.bool_()),  # the query matched as a negative (an inverted or solarized copy)
        ("score", pa.float32()),
        # the local evidence a pair could have: a smooth image yields few keypoints, so few inliers
        ("query_keypoints", pa.int32()),
        ("reference_keypoints", pa.int32()),
    ]
)

#: The detector's verdict on every usable query: one row per kept box (its crop), or one row without a box.
BOXES = pa.schema(
    [
        ("query_id", pa.string()),
        ("cropped", pa.bool_()),  # True when a box passed the rules and the crop was written
        ("rank", pa.int32()),  # 1: the most confident box, ...; its crop is d2lv.io.views.crop_id(query_id, rank)
        ("x0", pa.int32()),  # box in the query's pixel coordinates (EXIF-rotated); null without a box
        ("y0", pa.int32()),
        ("x1", pa.int32()),
        ("y1", pa.int32()),
        ("confidence", pa.float32()),  # detector confidence of the box; null without a box
    ]
)

SKIPPED = pa.schema(
    [
        ("set", pa.string()),
        ("id", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
    ]
)


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``schema``."""
    return schema.empty_table().to_pandas()


def rank_within_query(pairs: pd.DataFrame, order: Sequence[tuple[str, bool]], topk: int) -> pd.DataFrame:
    """Keep each query's ``topk`` best references and number them from 1 (column ``rank``).

    ``order`` lists (column, ascending) sort keys; ties then go to the smaller
    reference id, so rankings never depend on row order. A pair seen twice
    (e.g. from two shards) is kept once, at its best.
    """
    columns = ["query_id", *(c for c, _ in order), "reference_id"]
    ascending = [True, *(a for _, a in order), True]
    ordered = pairs.sort_values(columns, ascending=ascending, kind="stable")
    ordered = ordered.drop_duplicates(["query_id", "reference_id"])
    ordered = ordered.groupby("query_id", sort=False).head(topk).copy()
    ordered["rank"] = (ordered.groupby("query_id", sort=False).cumcount() + 1).astype("int32")
    return ordered.reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | os.PathLike, schema: pa.Schema) -> None:
    """Write ``frame`` as Parquet, cast to ``schema`` (extra columns are an error); whole or not at all."""
    table = _cast(frame, schema)
    with atomic.replacing(path) as partial:
        pq.write_table(table, partial)


def conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """``frame`` as :func:`write_table` and :func:`read_tables` give it back (e.g. float32 columns): a step's
    output held in memory reads as the workflow's file of it does."""
    return _cast(frame, schema).to_pandas()


def _cast(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    missing = set(schema.names) - set(frame.columns)
    extra = set(frame.columns) - set(schema.names)
    if missing or extra:
        raise ValueError(f"table columns do not match schema: missing {sorted(missing)}, extra {sorted(extra)}")
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def _read_table(path: str | os.PathLike, schema: pa.Schema) -> pa.Table:
    """One Parquet file; one that is not Parquet, or lacks the schema's columns, is the user's error."""
    try:
        return pq.read_table(path, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        columns = ", ".join(schema.names)
        raise InputError(f"{path} is not a d2lv table with the columns {columns}: {err}") from err


def read_tables(paths: Iterable[str | os.PathLike], schema: pa.Schema) -> pd.DataFrame:
    """Read and concatenate Parquet files written with ``schema``."""
    frames = [_read_table(p, schema).to_pandas() for p in paths]
    if not frames:
        return empty_frame(schema)
    return pd.concat(frames, ignore_index=True)


def read_pair_keys(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The distinct (query_id, reference_id) pairs of pair tables of any branch."""
    return pair_keys([pq.read_table(p, columns=["query_id", "reference_id"]).to_pandas() for p in paths])


def pair_keys(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The distinct (query_id, reference_id) pairs of pair frames of any branch, in order of appearance."""
    frames = [frame[["query_id", "reference_id"]] for frame in frames]
    if not frames:
        return pd.DataFrame({"query_id": pd.Series(dtype=str), "reference_id": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True)
