"""The edit families: how the DISC21 queries were made, placement boxes, chains."""


import numpy as np
import pytest
import skimage.data
from conftest import jpeg_roundtrip
from PIL import Image

from d2lv.synth import edits, families


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
@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_family_gives_decodable_rgb_image(name, photo, backdrop_photo, no_network):
    chelsea = Image.fromarray(skimage.data.chelsea())
    tiny = chelsea.resize((40, 27))
    for img in (photo, chelsea, tiny):
        for seed in range(4):
            out = families.apply_family(name, img, np.random.default_rng(seed), lambda: backdrop_photo)
            assert out.image.mode == "RGB"
            assert out.steps and all(isinstance(step, str) and step for step in out.steps)
            assert jpeg_roundtrip(out.image).size == out.image.size
            if out.image.size == img.size:
                assert not np.array_equal(np.asarray(out.image), np.asarray(img))
            if out.box is not None:
                x0, y0, x1, y1 = out.box
                assert 0 <= x0 < x1 <= out.image.width and 0 <= y0 < y1 <= out.image.height


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_family_is_deterministic_given_rng(name, photo, backdrop_photo):
    a, b = (families.apply_family(name, photo, np.random.default_rng(11), lambda: backdrop_photo) for _ in range(2))
    assert a.steps == b.steps and a.box == b.box
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


@pytest.mark.parametrize("name", families.PLACING_FAMILIES)
def test_placing_families_box_the_photo(name, photo, backdrop_photo):
    for seed in range(6):
        out = families.apply_family(name, photo, np.random.default_rng(seed), lambda: backdrop_photo)
        assert out.box is not None
        assert _box_matches(out, photo) > 0.97


def test_paste_covers_10_to_40_percent_of_another_photo(photo, backdrop_photo):
    for seed in range(10):
        out = families.apply_family("paste", photo, np.random.default_rng(seed), lambda: backdrop_photo)
        x0, y0, x1, y1 = out.box
        assert out.image.size == backdrop_photo.size  # the background is larger than the photo
        assert 0.09 <= (x1 - x0) * (y1 - y0) / (out.image.width * out.image.height) <= 0.41
        # Outside the box: the background, untouched (up to the paste's own rounding).
        outside = np.ones(out.image.size[::-1], bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(np.asarray(out.image)[outside], np.asarray(backdrop_photo)[outside])


def test_paste_grows_a_small_background_and_needs_one(photo):
    small = Image.fromarray(skimage.data.coffee()).resize((120, 80))
    out = families.apply_family("paste", photo, np.random.default_rng(0), lambda: small)
    assert max(out.image.size) >= max(photo.size) - 1
    with pytest.raises(ValueError, match="backdrop"):
        families.apply_family("paste", photo, np.random.default_rng(0))


def test_placement_box_is_exact_for_known_placements():
    imaugs = edits.ensure_augly()

    def pad(im: Image.Image) -> Image.Image:
        return imaugs.pad(im, w_factor=0.25, h_factor=0.1, color=(0, 0, 0))

    assert families.placement_box(pad, (40, 30)) == (10, 3, 50, 33)
    assert families.placement_box(lambda im: imaugs.meme_format(im, text="HI", caption_height=50), (200, 100)) == (
        0, 50, 200, 150,
    )
    with pytest.raises(ValueError, match="hides"):
        families.placement_box(lambda im: Image.new("RGB", (10, 10)), (5, 5))


def test_combo_members_rules():
    for seed in range(200):
        members = families.combo_members(np.random.default_rng(seed))
        assert len(members) == len(set(members)) == 3
        assert "combo" not in members
        placing = [i for i, m in enumerate(members) if m in families.PLACING_FAMILIES]
        assert len(placing) <= 1
        if placing:
            assert all(i < placing[0] for i, m in enumerate(members) if m in families.MOVING_FAMILIES)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_combo_tracks_the_box_through_later_edits(photo, backdrop_photo):
    for seed in range(5):
        out = families.chain_families(["paste", "mild"], photo, np.random.default_rng(seed), lambda: backdrop_photo)
        assert out.steps == ("overlay_onto_background_image", "scale", "color_jitter", "encoding_quality")
        assert out.image.size != backdrop_photo.size  # rescaled after the paste
        assert _box_matches(out, photo) > 0.9
    seen_box = sum(
        families.apply_family("combo", photo, np.random.default_rng(s), lambda: backdrop_photo).box is not None
        for s in range(20)
    )
    assert 0 < seen_box < 20


def test_chain_refuses_to_move_a_placed_photo(photo, backdrop_photo):
    with pytest.raises(ValueError, match="cannot follow a placement"):
        families.chain_families(["paste", "crop"], photo, np.random.default_rng(0), lambda: backdrop_photo)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_families_cover_their_variants(photo, backdrop_photo):
    small = photo.resize((96, 96))
    steps = set()
    for name in ("geometry", "filters", "padding"):
        for seed in range(40):
            steps.update(families.apply_family(name, small, np.random.default_rng(seed), lambda: backdrop_photo).steps)
    assert {"rotate", "perspective_transform", "skew", "hflip", "change_aspect_ratio"} <= steps
    assert {"grayscale", "blur", "pixelization", "random_noise", "opacity", "overlay_stripes"} <= steps
    assert {"pad", "pad_blur", "pad_photo"} <= steps  # pad_square needs a non-square photo


def test_random_noise_leaves_numpy_global_state_alone(photo):
    before = np.random.get_state()[1].copy()
    families.apply_family("filters", photo, np.random.default_rng(0))
    for seed in range(30):
        edits._random_noise(photo, np.random.default_rng(seed))
    assert np.array_equal(np.random.get_state()[1], before)
