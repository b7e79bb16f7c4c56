"""Distractor references for scale runs: new collages of a separate photo pool, reproducible and all different."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import save_photos
from PIL import Image

from d2lv.errors import InputError
from d2lv.synth.distractors import draw_distractor, make_distractors

POOL = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return save_photos(tmp_path_factory.mktemp("pool"), POOL)


def test_distractors_are_reproducible_all_different_and_resumable(pool, tmp_path):
    paths = make_distractors(pool, tmp_path / "a", 24, seed=3, workers=2, progress=False)
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    assert len(set(digests)) == 24  # no two are the same picture
    again = make_distractors(pool, tmp_path / "b", 24, seed=3, progress=False)
    assert digests == [hashlib.sha256(path.read_bytes()).hexdigest() for path in again]
    paths[5].unlink()
    mtime = paths[6].stat().st_mtime_ns
    make_distractors(pool, tmp_path / "a", 24, seed=3, progress=False)  # draws only the missing one
    assert hashlib.sha256(paths[5].read_bytes()).hexdigest() == digests[5] and paths[6].stat().st_mtime_ns == mtime
    assert sorted((tmp_path / "a").iterdir()) == paths  # and nothing half-written beside them


def test_a_distractor_is_no_photo_of_the_pool(pool):
    """Cropped, turned, jittered and resized: it differs from every whole photo of the pool at its size."""
    picture = np.asarray(draw_distractor(pool, seed=0, i=7), np.float32)
    for path in pool:
        photo = Image.open(path).convert("RGB").resize(picture.shape[1::-1])
        assert np.abs(np.asarray(photo, np.float32) - picture).mean() > 10


def test_no_photos_is_an_error_that_says_what_to_pass(tmp_path):
    with pytest.raises(InputError, match="training photos"):
        make_distractors([], tmp_path, 3, progress=False)
