"""ISC 2021 files: the matches CSV, the ground truth, and labelling pairs against it.

Every CSV of ids is read here, by :func:`read_id_csv`, as strings: an id such as
``NA``, ``null`` or ``001`` stays the id it is, never a missing value or a number.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from d2lv.errors import InputError
from d2lv.io import atomic

ISC_COLUMNS = ["query_id", "reference_id", "score"]
#: A labelled set's layout (the demo's, a dev set's, a benchmark's): its two image folders and CSVs.
QUERY_DIR, REFERENCE_DIR = "queries", "references"
GROUND_TRUTH_FILE, CATEGORIES_FILE = "ground_truth.csv", "categories.csv"
KEYS = ["query_id", "reference_id"]


def read_id_csv(path: str | os.PathLike, required: Sequence[str] = (), what: str = "CSV",
                numeric: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV with every column but the ``numeric`` ones read as a string (empty fields as ``""``).

    ``required`` columns must exist; ``what`` names the kind of file in the error.
    """
    dtypes = defaultdict(lambda: str, {column: "float64" for column in numeric})
    try:
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable {what}: {err}") from err
    except ValueError as err:  # a numeric column holding text
        raise InputError(f"{path}: {what} has a non-numeric value in {', '.join(numeric)}: {err}") from err
    missing = set(required) - set(frame.columns)
    if missing:
        raise InputError(f"{path}: {what} needs columns {','.join(required)}; missing {sorted(missing)}")
    return frame


def write_isc_csv(matches: pd.DataFrame, path: str | os.PathLike) -> None:
    """``query_id,reference_id,score`` with a header, best first; written whole or not at all."""
    with atomic.replacing(path) as partial:
        partial.write_text(isc_csv_text(matches))


def isc_csv_text(matches: pd.DataFrame) -> str:
    """The lines :func:`write_isc_csv` writes."""
    return matches[ISC_COLUMNS].to_csv(index=False, float_format="%.10g", lineterminator="\n")


def read_isc_csv(path: str | os.PathLike) -> pd.DataFrame:
    return read_id_csv(path, ISC_COLUMNS, "an ISC matching file", numeric=["score"])


def read_ground_truth(path: str | os.PathLike) -> pd.DataFrame:
    """``query_id,reference_id`` CSV; an empty reference marks a query that is not a copy."""
    return read_id_csv(path, KEYS, "ground truth")


def is_positive(pairs: pd.DataFrame, ground_truth: pd.DataFrame) -> np.ndarray:
    """True where (query_id, reference_id) of ``pairs`` is a ground-truth copy."""
    positives = ground_truth[ground_truth.reference_id != ""]
    truth = set(zip(positives.query_id, positives.reference_id))
    return np.fromiter(((q, r) in truth for q, r in zip(pairs.query_id, pairs.reference_id)), bool, len(pairs))
