"""Parquet table schemas and I/O: one definition per table the pipeline writes.

Every stage reads and writes its tables through :func:`write_table` and
:func:`read_tables`, so column names and types are declared exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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

SCORES = pa.schema(
    [
        ("query_id", pa.string()),
        ("reference_id", pa.string()),
        ("branch", pa.string()),
        ("n_matches", pa.int32()),
        ("n_inliers", pa.int32()),
        ("flipped", pa.bool_()),
        ("score", pa.float32()),
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


def write_table(frame: pd.DataFrame, path: str | os.PathLike, schema: pa.Schema) -> None:
    """Write ``frame`` as Parquet, cast to ``schema`` (extra columns are an error)."""
    missing = set(schema.names) - set(frame.columns)
    extra = set(frame.columns) - set(schema.names)
    if missing or extra:
        raise ValueError(f"table columns do not match schema: missing {sorted(missing)}, extra {sorted(extra)}")
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    pq.write_table(table, path)


def read_tables(paths: Iterable[str | os.PathLike], schema: pa.Schema) -> pd.DataFrame:
    """Read and concatenate Parquet files written with ``schema``."""
    frames = [pq.read_table(p, schema=schema).to_pandas() for p in paths]
    if not frames:
        return empty_frame(schema)
    return pd.concat(frames, ignore_index=True)
