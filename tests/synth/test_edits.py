"""The single edits: the recipes of the dev sets, random_edit, the AugLy shim."""


import numpy as np
import pytest
from conftest import jpeg_roundtrip
from PIL import ImageFont

from d2lv.synth import edits


@pytest.mark.parametrize("name", list(edits.RECIPES))
def test_recipe_gives_decodable_rgb_image_of_sensible_size(name, photo, no_network):
    for seed in range(5):
        out = edits.RECIPES[name](photo, np.random.default_rng(seed))
        assert out.mode == "RGB"
        assert 0.25 * photo.width <= out.width <= 2.1 * photo.width
        assert 0.25 * photo.height <= out.height <= 2.1 * photo.height
        assert jpeg_roundtrip(out).size == out.size
        if out.size == photo.size:
            assert not np.array_equal(np.asarray(out), np.asarray(photo))


@pytest.mark.parametrize("name", list(edits.RECIPES))
def test_recipe_is_deterministic_given_rng(name, photo):
    a = edits.RECIPES[name](photo, np.random.default_rng(7))
    b = edits.RECIPES[name](photo, np.random.default_rng(7))
    assert a.size == b.size
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_crop_keeps_40_to_80_percent_of_the_area(photo):
    for seed in range(20):
        out = edits.crop(photo, np.random.default_rng(seed))
        assert 0.39 <= out.width * out.height / (photo.width * photo.height) <= 0.81


def test_rescale_factor_in_range(photo):
    for seed in range(20):
        out = edits.rescale(photo, np.random.default_rng(seed))
        assert 0.29 <= out.width / photo.width <= 2.01


def test_apply_recipe_makes_rgb_from_any_mode(photo):
    gray = photo.convert("L")
    for name in edits.RECIPES:
        assert edits.apply_recipe(name, gray, np.random.default_rng(0)).mode == "RGB"


def test_random_edit_is_deterministic_and_names_its_recipes(photo):
    for seed in range(10):
        a, names_a = edits.random_edit(photo, np.random.default_rng(seed))
        b, names_b = edits.random_edit(photo, np.random.default_rng(seed))
        assert names_a == names_b
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert names_a[0] in edits.RECIPES
        assert len(names_a) in (1, 2)
        if len(names_a) == 2:
            assert names_a[1] in edits.SECONDARY_RECIPES and names_a[1] != names_a[0]


def test_random_edit_respects_primary_and_secondary_probability(photo):
    small = photo.resize((64, 64))
    _, names = edits.random_edit(small, np.random.default_rng(0), primary="text", p_secondary=0.0)
    assert names == ["text"]
    _, names = edits.random_edit(small, np.random.default_rng(0), primary="crop", p_secondary=1.0)
    assert names[0] == "crop" and len(names) == 2


def test_random_edit_covers_recipes(photo):
    small = photo.resize((64, 64))
    seen = {edits.random_edit(small, np.random.default_rng(s))[1][0] for s in range(60)}
    assert seen == set(edits.RECIPES)


def test_ensure_augly_is_idempotent_and_leaves_numpy_alone():
    first = edits.ensure_augly()
    assert edits.ensure_augly() is first
    assert "float" not in vars(np)
    assert hasattr(ImageFont.FreeTypeFont, "getsize_multiline")


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # AugLy uses np.matrix
def test_shim_repairs_augly_functions_broken_by_numpy2_and_pillow10(photo, no_network):
    imaugs = edits.ensure_augly()
    meme = imaugs.meme_format(photo, text="HELLO\nWORLD")
    assert meme.mode == "RGB" and meme.height > photo.height
    warped = imaugs.perspective_transform(photo, sigma=30.0, seed=1)
    assert warped.size == photo.size


def test_getsize_shim_measures_text():
    font = ImageFont.load_default(size=20)
    width, height = font.getsize("hello")
    assert width > 0 and height > 0
    assert font.getsize_multiline("hello\nhello")[1] > height
