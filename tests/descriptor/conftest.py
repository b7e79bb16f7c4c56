"""Fixtures of the global branch's tests."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="module")
def photos(astronaut, chelsea, coffee) -> dict[str, np.ndarray]:
    return {"astronaut": astronaut, "chelsea": chelsea, "coffee": coffee, "rocket": data.rocket(),
            "motorcycle": data.stereo_motorcycle()[0]}
