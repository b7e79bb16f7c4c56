import io
import socket

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageFont

from d2lv.synth import edits


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _jpeg_roundtrip(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    buf.seek(0)
    with Image.open(buf) as decoded:
        decoded.load()
        return decoded


@pytest.mark.parametrize("name", list(edits.RECIPES))
def test_recipe_gives_decodable_rgb_image_of_sensible_size(name, photo, no_network):
    for seed in range(5):
        out = edits.RECIPES[name](photo, np.random.default_rng(seed))
        assert out.mode == "RGB"
        assert 0.25 * photo.width <= out.width <= 2.1 * photo.width
        assert 0.25 * photo.height <= out.height <= 2.1 * photo.height
        assert _jpeg_roundtrip(out).size == out.size
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


# --- edit families ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def backdrop_photo() -> Image.Image:
    return Image.fromarray(skimage.data.rocket())


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def _box_matches(edited: edits.Edited, source: Image.Image) -> float:
    """Correlation between the box's pixels and the source resized to the box, after
    cropping the source's centre to the box's aspect ratio (screenshots may crop)."""
    x0, y0, x1, y1 = edited.box
    w, h = x1 - x0, y1 - y0
    scale = min(source.width / w, source.height / h)
    cw, ch = w * scale, h * scale
    left, top = (source.width - cw) / 2, (source.height - ch) / 2
    centre = source.crop((round(left), round(top), round(left + cw), round(top + ch)))
    inside = np.asarray(edited.image.crop((x0, y0, x1, y1)).convert("L"))
    expected = np.asarray(centre.convert("L").resize((w, h), Image.BILINEAR))
    return _correlation(inside, expected)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # AugLy uses np.matrix
@pytest.mark.parametrize("name", list(edits.FAMILIES))
def test_family_gives_decodable_rgb_image(name, photo, backdrop_photo, no_network):
    chelsea = Image.fromarray(skimage.data.chelsea())
    tiny = chelsea.resize((40, 27))
    for img in (photo, chelsea, tiny):
        for seed in range(4):
            out = edits.apply_family(name, img, np.random.default_rng(seed), lambda: backdrop_photo)
            assert out.image.mode == "RGB"
            assert out.steps and all(isinstance(step, str) and step for step in out.steps)
            assert _jpeg_roundtrip(out.image).size == out.image.size
            if out.image.size == img.size:
                assert not np.array_equal(np.asarray(out.image), np.asarray(img))
            if out.box is not None:
                x0, y0, x1, y1 = out.box
                assert 0 <= x0 < x1 <= out.image.width and 0 <= y0 < y1 <= out.image.height


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("name", list(edits.FAMILIES))
def test_family_is_deterministic_given_rng(name, photo, backdrop_photo):
    a, b = (edits.apply_family(name, photo, np.random.default_rng(11), lambda: backdrop_photo) for _ in range(2))
    assert a.steps == b.steps and a.box == b.box
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


@pytest.mark.parametrize("name", edits.PLACING_FAMILIES)
def test_placing_families_box_the_photo(name, photo, backdrop_photo):
    for seed in range(6):
        out = edits.apply_family(name, photo, np.random.default_rng(seed), lambda: backdrop_photo)
        assert out.box is not None
        assert _box_matches(out, photo) > 0.97


def test_paste_covers_10_to_40_percent_of_another_photo(photo, backdrop_photo):
    for seed in range(10):
        out = edits.apply_family("paste", photo, np.random.default_rng(seed), lambda: backdrop_photo)
        x0, y0, x1, y1 = out.box
        assert out.image.size == backdrop_photo.size  # the background is larger than the photo
        assert 0.09 <= (x1 - x0) * (y1 - y0) / (out.image.width * out.image.height) <= 0.41
        # Outside the box: the background, untouched (up to the paste's own rounding).
        outside = np.ones(out.image.size[::-1], bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(np.asarray(out.image)[outside], np.asarray(backdrop_photo)[outside])


def test_paste_grows_a_small_background_and_needs_one(photo):
    small = Image.fromarray(skimage.data.coffee()).resize((120, 80))
    out = edits.apply_family("paste", photo, np.random.default_rng(0), lambda: small)
    assert max(out.image.size) >= max(photo.size) - 1
    with pytest.raises(ValueError, match="backdrop"):
        edits.apply_family("paste", photo, np.random.default_rng(0))


def test_placement_box_is_exact_for_known_placements():
    imaugs = edits.ensure_augly()
    assert edits.placement_box(lambda im: imaugs.pad(im, w_factor=0.25, h_factor=0.1, color=(0, 0, 0)), (40, 30)) == (
        10, 3, 50, 33,
    )
    assert edits.placement_box(lambda im: imaugs.meme_format(im, text="HI", caption_height=50), (200, 100)) == (
        0, 50, 200, 150,
    )
    with pytest.raises(ValueError, match="hides"):
        edits.placement_box(lambda im: Image.new("RGB", (10, 10)), (5, 5))


def test_combo_members_rules():
    for seed in range(200):
        members = edits.combo_members(np.random.default_rng(seed))
        assert len(members) == len(set(members)) == 3
        assert "combo" not in members
        placing = [i for i, m in enumerate(members) if m in edits.PLACING_FAMILIES]
        assert len(placing) <= 1
        if placing:
            assert all(i < placing[0] for i, m in enumerate(members) if m in edits.MOVING_FAMILIES)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_combo_tracks_the_box_through_later_edits(photo, backdrop_photo):
    for seed in range(5):
        out = edits.chain_families(["paste", "mild"], photo, np.random.default_rng(seed), lambda: backdrop_photo)
        assert out.steps == ("overlay_onto_background_image", "scale", "color_jitter", "encoding_quality")
        assert out.image.size != backdrop_photo.size  # rescaled after the paste
        assert _box_matches(out, photo) > 0.9
    seen_box = sum(
        edits.apply_family("combo", photo, np.random.default_rng(s), lambda: backdrop_photo).box is not None
        for s in range(20)
    )
    assert 0 < seen_box < 20


def test_chain_refuses_to_move_a_placed_photo(photo, backdrop_photo):
    with pytest.raises(ValueError, match="cannot follow a placement"):
        edits.chain_families(["paste", "crop"], photo, np.random.default_rng(0), lambda: backdrop_photo)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_families_cover_their_variants(photo, backdrop_photo):
    small = photo.resize((96, 96))
    steps = set()
    for name in ("geometry", "filters", "padding"):
        for seed in range(40):
            steps.update(edits.apply_family(name, small, np.random.default_rng(seed), lambda: backdrop_photo).steps)
    assert {"rotate", "perspective_transform", "skew", "hflip", "change_aspect_ratio"} <= steps
    assert {"grayscale", "blur", "pixelization", "random_noise", "opacity", "overlay_stripes"} <= steps
    assert {"pad", "pad_blur", "pad_photo"} <= steps  # pad_square needs a non-square photo


def test_random_noise_leaves_numpy_global_state_alone(photo):
    before = np.random.get_state()[1].copy()
    edits.apply_family("filters", photo, np.random.default_rng(0))
    for seed in range(30):
        edits._random_noise(photo, np.random.default_rng(seed))
    assert np.array_equal(np.random.get_state()[1], before)
