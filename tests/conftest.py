"""Shared fixtures: real photographs shipped with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)  # session-wide: no test may alter another's photo
    return array


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB photo."""
    return _readonly(data.astronaut())


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """300x451 RGB photo (not square, so a rotation changes its shape)."""
    return _readonly(data.chelsea())


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """400x600 RGB photo."""
    return _readonly(data.coffee())
