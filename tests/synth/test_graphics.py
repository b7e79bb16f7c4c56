"""Procedural graphics and the tiles cut from them: reproducible, low-texture where meant, tiles that differ."""

import cv2
import numpy as np
import pytest
from PIL import Image

from d2lv.io.images import tile_box
from d2lv.synth import graphics, tile_pictures
from d2lv.synth.graphics import GRAPHIC_KINDS, draw_graphic


def _sift_keypoints(img: Image.Image) -> int:
    return len(cv2.SIFT_create().detect(np.asarray(img.convert("L")), None))


@pytest.mark.parametrize("kind", GRAPHIC_KINDS)
def test_each_kind_is_reproducible_from_its_seed_and_sized_like_a_screen(kind):
    first, again, other = (draw_graphic(kind, np.random.default_rng(s)) for s in (3, 3, 4))
    assert first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size != other.size or not np.array_equal(np.asarray(first), np.asarray(other))
    assert 640 <= max(first.size) <= 1024 and 0.55 <= min(first.size) / max(first.size) <= 0.81


@pytest.mark.parametrize("seed", range(3))
def test_gradients_and_paper_are_low_texture_while_charts_and_text_are_not(seed):
    rng = np.random.default_rng(seed)
    smooth = [_sift_keypoints(draw_graphic(kind, rng)) for kind in ("gradient", "paper")]
    busy = [_sift_keypoints(draw_graphic(kind, rng)) for kind in ("chart", "text_card", "ui")]
    assert max(smooth) < 10 and min(busy) > 80


def test_text_card_shows_the_words_it_was_given(monkeypatch):
    rng = np.random.default_rng(0)
    plain = np.asarray(graphics.text_card((800, 600), rng))
    monkeypatch.setattr(graphics, "words_fitting", lambda rng, face, width: "")
    blank = np.asarray(graphics.text_card((800, 600), np.random.default_rng(0)))
    # the same background without the text: the text covers some pixels, not most
    changed = np.abs(plain.astype(int) - blank.astype(int)).max(axis=2) > 60
    assert 0.005 < changed.mean() < 0.3


@pytest.mark.parametrize("size", [(1024, 768), (640, 853), (641, 641), (97, 301)])
def test_the_two_tiles_of_a_picture_share_no_pixel(size):
    first, second = (tile_box(*size, part) for part in (0, 1))
    overlap_x = min(first[2], second[2]) - max(first[0], second[0])
    overlap_y = min(first[3], second[3]) - max(first[1], second[1])
    assert min(overlap_x, overlap_y) < 0  # a gap of one pixel or more between them
    assert first[2] - first[0] == second[2] - second[0] and first[3] - first[1] == second[3] - second[1]


def test_tiles_that_are_the_same_image_or_a_flip_of_it_are_rejected():
    flat = Image.new("RGB", (800, 600), (30, 140, 200))
    across = Image.fromarray(np.repeat(np.linspace(0, 255, 600, dtype=np.uint8)[:, None, None], 800, axis=1)
                             .repeat(3, axis=2))  # a vertical gradient, cut left/right
    left = np.asarray(draw_graphic("chart", np.random.default_rng(1)).resize((400, 600)))
    mirrored = Image.fromarray(np.concatenate([left, left[:, ::-1]], axis=1))
    assert not any(tile_pictures.tiles_differ(img) for img in (flat, across, mirrored))
    assert all(tile_pictures.tiles_differ(draw_graphic(kind, np.random.default_rng(2)))
               for kind in ("chart", "text_card", "ui"))


def test_draw_graphics_saves_balanced_kinds_whose_tiles_differ(tmp_path):
    paths = tile_pictures.draw_graphics(12, np.random.default_rng(0), tmp_path, max_side=512)
    kinds = [p.stem.split("-", 1)[1] for p in paths]
    assert sorted(kinds) == sorted(GRAPHIC_KINDS * 2)
    for path in paths:
        with Image.open(path) as img:
            img.thumbnail((512, 512), Image.LANCZOS)
            assert tile_pictures.tile_difference(img) > tile_pictures.TILE_MIN_DIFFERENCE - 1


def test_usable_wallpapers_keep_one_format_of_an_artwork(tmp_path):
    art = draw_graphic("shapes", np.random.default_rng(5))
    art.save(tmp_path / "a_16x9.png")
    art.resize((art.width * 3 // 4, art.height)).save(tmp_path / "a_4x3.png")  # another format, same artwork
    draw_graphic("ui", np.random.default_rng(6)).save(tmp_path / "b.png")
    Image.new("RGB", (800, 600), (10, 20, 30)).save(tmp_path / "c_flat.png")  # its tiles are alike
    kept = [p.name for p in tile_pictures.usable_wallpapers(tmp_path, max_side=1024)]
    assert kept == ["a_16x9.png", "b.png"]
