"""load_image / load_gray / find_images / list_folder on real photos saved in every format we accept."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d2lv.io.images import ImageError, box_iou, find_images, list_folder, load_gray, load_image, reason_counts

EXIF_ORIENTATION = 0x0112


# ---------------------------------------------------------------- helpers


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-shaped images, in grey levels."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def save(pixels: np.ndarray | Image.Image, path: Path, **kwargs) -> Path:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(path, **kwargs)
    return path


def assert_rgb8(pixels: np.ndarray, shape: tuple[int, int]) -> None:
    assert pixels.dtype == np.uint8
    assert pixels.shape == (*shape, 3)


def grey_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def open_fds_to(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux only)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd) == str(path.resolve())
        except OSError:
            pass
    return count


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("suffix", "options", "max_diff"),
    [
        (".png", {}, 0.0),
        (".bmp", {}, 0.0),
        (".tif", {}, 0.0),
        (".tiff", {"compression": "tiff_lzw"}, 0.0),
        (".webp", {"lossless": True}, 0.0),
        (".webp", {"quality": 90}, 4.0),
        (".jpg", {"quality": 95}, 3.0),
        (".jpeg", {"quality": 95}, 3.0),
    ],
)
def test_common_formats_load_as_rgb_uint8(tmp_path, astronaut, suffix, options, max_diff):
    path = save(astronaut, tmp_path / f"astronaut{suffix}", **options)
    pixels = load_image(path)
    assert_rgb8(pixels, astronaut.shape[:2])
    assert mad(pixels, astronaut) <= max_diff


def test_gif_loads_as_its_palette_colours(tmp_path, chelsea):
    paletted = Image.fromarray(chelsea).quantize(256)
    path = save(paletted, tmp_path / "chelsea.gif")
    pixels = load_image(path)
    assert_rgb8(pixels, chelsea.shape[:2])
    np.testing.assert_array_equal(pixels, np.asarray(paletted.convert("RGB")))
    assert mad(pixels, chelsea) < 6


def test_animated_gif_gives_its_first_frame(tmp_path, chelsea, coffee):
    first = Image.fromarray(chelsea).quantize(256)
    second = Image.fromarray(coffee[: chelsea.shape[0], : chelsea.shape[1]]).quantize(256)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2
    pixels = load_image(path)
    assert_rgb8(pixels, chelsea.shape[:2])
    expected_first = np.asarray(first.convert("RGB"))
    expected_second = np.asarray(second.convert("RGB"))
    assert mad(expected_first, expected_second) > 20  # the frames really differ
    np.testing.assert_array_equal(pixels, expected_first)


# ---------------------------------------------------------------- colour modes


def test_cmyk_jpeg_colours_match_the_rgb_original(tmp_path, astronaut):
    path = save(Image.fromarray(astronaut).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    pixels = load_image(path)
    assert_rgb8(pixels, astronaut.shape[:2])
    assert mad(pixels, astronaut) < 4  # an inverted or channel-swapped decode is off by ~100
    # each channel individually, so a swap of two channels cannot hide in the mean
    for channel in range(3):
        assert mad(pixels[..., channel], astronaut[..., channel]) < 5


def test_16bit_grey_png_spans_full_range_and_keeps_structure(tmp_path, astronaut):
    grey8 = grey_of(astronaut)
    path = save(grey8.astype(np.uint16) * 257, tmp_path / "grey16.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # "I;16" in current Pillow
    pixels = load_image(path)
    assert_rgb8(pixels, grey8.shape)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.corrcoef(pixels[..., 0].ravel(), grey8.ravel())[0, 1] > 0.999
    assert mad(pixels[..., 0], grey8) <= 1.0


@pytest.mark.parametrize("span", [25, 100, 1000])
def test_16bit_grey_with_narrow_range_is_stretched_to_0_255(tmp_path, chelsea, span):
    # A dim 16-bit scan: values only in 1000..1000+span. The brightest must reach 255
    # (a truncating rescale gave 254 for spans such as 25 and 100).
    grey8 = grey_of(chelsea).astype(np.float64)
    lo, hi = grey8.min(), grey8.max()
    narrow = (1000 + np.rint((grey8 - lo) / (hi - lo) * span)).astype(np.uint16)
    pixels = load_image(save(narrow, tmp_path / "dim16.png"))[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.corrcoef(pixels.ravel(), grey8.ravel())[0, 1] > 0.99


def test_palette_png_without_transparency(tmp_path, astronaut):
    paletted = Image.fromarray(astronaut).quantize(64)
    path = save(paletted, tmp_path / "palette.png")
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" not in check.info
    pixels = load_image(path)
    assert_rgb8(pixels, astronaut.shape[:2])
    np.testing.assert_array_equal(pixels, np.asarray(paletted.convert("RGB")))
    assert mad(pixels, astronaut) < 10


def test_palette_png_transparent_index_becomes_white(tmp_path, astronaut):
    paletted = Image.fromarray(astronaut).quantize(64)
    indices = np.asarray(paletted)
    clear = int(np.bincount(indices.ravel()).argmax())  # the most used colour becomes transparent
    path = save(paletted, tmp_path / "palette_alpha.png", transparency=clear)
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" in check.info
    pixels = load_image(path)
    assert_rgb8(pixels, astronaut.shape[:2])
    transparent = indices == clear
    assert transparent.sum() > 1000
    assert (pixels[transparent] == 255).all()
    opaque_colours = np.asarray(paletted.convert("RGB"))[~transparent]
    np.testing.assert_array_equal(pixels[~transparent], opaque_colours)


def test_rgba_is_composited_onto_white(tmp_path, coffee):
    h, w = coffee.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 3] = 0  # left third fully transparent
    alpha[:, w // 3 : 2 * w // 3] = 128  # middle third half transparent
    path = save(np.dstack([coffee, alpha]), tmp_path / "rgba.png")
    pixels = load_image(path).astype(np.int16)
    assert pixels.shape == (h, w, 3)
    left, middle, right = np.s_[:, : w // 3], np.s_[:, w // 3 : 2 * w // 3], np.s_[:, 2 * w // 3 :]
    assert (pixels[left] == 255).all()
    np.testing.assert_array_equal(pixels[right], coffee[right])
    blended = (coffee[middle].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(pixels[middle] - blended).max() <= 1.0


def test_la_is_grey_composited_onto_white(tmp_path, chelsea):
    grey = grey_of(chelsea)
    h, w = grey.shape
    alpha = np.full((h, w), 255, np.uint8)
    alpha[: h // 2] = 0  # top half transparent
    path = save(Image.fromarray(np.dstack([grey, alpha]), mode="LA"), tmp_path / "la.png")
    with Image.open(path) as check:
        assert check.mode == "LA"
    pixels = load_image(path)
    assert_rgb8(pixels, (h, w))
    assert (pixels[: h // 2] == 255).all()
    for channel in range(3):
        np.testing.assert_array_equal(pixels[h // 2 :, :, channel], grey[h // 2 :])


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize(
    ("orientation", "stored_turns"),
    [
        # The file stores the photo turned; the tag says how to turn it back upright.
        (6, 1),  # stored 90° counter-clockwise; viewer turns it 90° clockwise
        (8, -1),  # stored 90° clockwise; viewer turns it 90° counter-clockwise
        (3, 2),  # stored upside down
    ],
)
def test_exif_rotated_jpeg_loads_upright(tmp_path, chelsea, orientation, stored_turns):
    stored = np.ascontiguousarray(np.rot90(chelsea, stored_turns))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = save(stored, tmp_path / f"rotated{orientation}.jpg", quality=95, exif=exif.tobytes())
    pixels = load_image(path)
    assert_rgb8(pixels, chelsea.shape[:2])  # 300x451, not the stored 451x300
    assert mad(pixels, chelsea) < 3
    if orientation == 3:  # same shape either way: make sure it was really turned
        assert mad(pixels, stored) > 30


def test_load_gray_is_upright_luminance(tmp_path, chelsea):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = save(np.ascontiguousarray(np.rot90(chelsea, 1)), tmp_path / "r.jpg", quality=95, exif=exif.tobytes())
    grey = load_gray(path)
    assert grey.dtype == np.uint8 and grey.shape == chelsea.shape[:2]
    assert mad(grey, grey_of(chelsea)) < 3


def test_load_gray_of_rgba_uses_white_background(tmp_path, coffee):
    alpha = np.full(coffee.shape[:2], 255, np.uint8)
    alpha[:50] = 0
    grey = load_gray(save(np.dstack([coffee, alpha]), tmp_path / "a.png"))
    assert grey.shape == coffee.shape[:2]
    assert (grey[:50] == 255).all()
    np.testing.assert_array_equal(grey[50:], grey_of(coffee)[50:])


# ---------------------------------------------------------------- bad inputs


def test_zero_byte_file_is_rejected(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(path)


def test_truncated_jpeg_is_rejected(tmp_path, astronaut):
    whole = save(astronaut, tmp_path / "whole.jpg", quality=90).read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_text_file_named_jpg_is_rejected(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(ImageError, match="unreadable|cannot identify"):
        load_image(path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nowhere.jpg")


def test_image_above_max_pixels_is_a_decompression_bomb(tmp_path, astronaut):
    path = save(astronaut, tmp_path / "big.png")
    n_pixels = astronaut.shape[0] * astronaut.shape[1]
    with pytest.raises(ImageError, match="decompression bomb") as caught:
        load_image(path, max_pixels=n_pixels - 1)
    assert "512x512" in str(caught.value)
    assert load_image(path, max_pixels=n_pixels).shape == astronaut.shape  # the limit itself is allowed
    assert load_gray(path, max_pixels=n_pixels).shape == astronaut.shape[:2]
    with pytest.raises(ImageError, match="decompression bomb"):
        load_gray(path, max_pixels=1000)


def test_rejected_image_does_not_keep_its_file_open(tmp_path, astronaut):
    path = save(astronaut, tmp_path / "big.png")
    truncated = tmp_path / "half.png"
    truncated.write_bytes(path.read_bytes()[:5000])
    for bad, limit in [(path, 10), (truncated, 10**9)]:
        with pytest.raises(ImageError) as caught:
            load_image(bad, max_pixels=limit)
        # the traceback (alive in `caught`) still references the opened image
        assert open_fds_to(bad) == 0, f"{bad.name} left open after {caught.value}"


def test_successful_load_does_not_keep_its_file_open(tmp_path, astronaut):
    path = save(astronaut, tmp_path / "ok.png")
    load_image(path)
    assert open_fds_to(path) == 0


# ---------------------------------------------------------------- find_images


def make_tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # find_images goes by name only


def test_find_images_recursive_case_insensitive_sorted_skipping_hidden(tmp_path):
    make_tree(
        tmp_path,
        [
            "b.jpg",
            "A.JPG",
            "c.PnG",
            "aa/x.webp",  # a folder sorting before the files next to it
            "sub/deeper/z.TIFF",
            "sub/y.gif",
            "sub/w.bmp",
            "sub/v.jpeg",
            "sub/u.tif",
            "notes.txt",
            "d.jpg.txt",
            "sub/readme.md",
            "noextension",
            ".hidden.jpg",
            ".cache/e.jpg",
            "sub/.thumbs/f.png",
        ],
    )
    found = list(find_images(tmp_path))
    relative = [p.relative_to(tmp_path).as_posix() for p in found]
    assert relative == [
        "A.JPG",
        "aa/x.webp",
        "b.jpg",
        "c.PnG",
        "sub/deeper/z.TIFF",
        "sub/u.tif",
        "sub/v.jpeg",
        "sub/w.bmp",
        "sub/y.gif",
    ]
    assert found == sorted(found)
    assert all(p.is_file() for p in found)


def test_find_images_accepts_str_and_empty_folder(tmp_path):
    assert list(find_images(str(tmp_path))) == []


def test_find_images_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list(find_images(tmp_path / "nowhere"))
    make_tree(tmp_path, ["photo.jpg"])
    with pytest.raises(FileNotFoundError):
        list(find_images(tmp_path / "photo.jpg"))  # a file is not a folder


# ---------------------------------------------------------------- list_folder: every file accounted for


def test_list_folder_gives_every_file_it_does_not_decode_a_reason(tmp_path, chelsea, coffee):
    """A folder as cameras, phones and Macs leave it: real photos among files that are not images."""
    (tmp_path / "trip").mkdir()
    save(chelsea, tmp_path / "photo.jpg", quality=90)
    save(coffee, tmp_path / "trip" / "coffee.png")
    make_tree(tmp_path, ["photo.heic", "trip/drawing.svg", "README", ".DS_Store", "trip/._coffee.png",
                         ".git/objects/ab/cdef", ".git/HEAD", "trip/.thumbnails/coffee.png"])
    (tmp_path / "linked").symlink_to(tmp_path / "trip", target_is_directory=True)
    listing = list_folder(tmp_path)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in listing.images] == ["photo.jpg", "trip/coffee.png"]
    reasons = {Path(p).relative_to(tmp_path).as_posix(): reason for p, reason in listing.refused}
    assert reasons == {
        ".DS_Store": "hidden file",
        ".git": "hidden folder, not searched (tool state such as .git or .snakemake)",
        "README": "unsupported format (no file extension)",
        "linked": "symbolic link to a folder, not followed: point the set at the folder it links to",
        "photo.heic": "unsupported format .heic",
        "trip/._coffee.png": "AppleDouble metadata file (macOS keeps a file's attributes there), not an image",
        "trip/.thumbnails": "hidden folder, not searched (tool state such as .git or .snakemake)",
        "trip/drawing.svg": "unsupported format .svg",
    }
    assert [p for p, _ in listing.refused] == sorted((p for p, _ in listing.refused), key=lambda p: Path(p).parts)
    assert list(find_images(tmp_path)) == [Path(p) for p in listing.images]


def test_reason_counts_groups_reasons_by_kind_most_frequent_first():
    reasons = ["unreadable image: cannot identify image file 'a.png'", "empty file (0 bytes)",
               "unreadable image: truncated", "hidden file"]
    assert reason_counts(reasons) == "2x unreadable image, 1x empty file (0 bytes), 1x hidden file"
    assert reason_counts([]) == ""


def test_box_iou_of_equal_disjoint_and_half_overlapping_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], float)
    np.testing.assert_allclose(box_iou(a, b), [1.0, 0.0, 50 / 150])


def test_a_listing_sorts_as_paths_sort_part_by_part(tmp_path):
    names = ["a/b.jpg", "a-b.jpg", "a b.jpg", "a.jpg", "a/a/z.jpg", "ab.jpg", "A.jpg", "a/.jpg.png", "b/a.jpg"]
    make_tree(tmp_path, names)
    listed = [Path(p) for p in list_folder(tmp_path).images]
    assert listed == sorted(listed) and len(listed) == len(names) - 1  # a/.jpg.png: hidden


def test_a_file_name_with_a_line_break_is_set_aside_saying_so(tmp_path):
    """Path lists hold one path per line (d2lv.io.paths): such a name could not be listed, so it is skipped."""
    make_tree(tmp_path, ["ok.jpg", "two\nlines.jpg"])
    listing = list_folder(tmp_path)
    assert listing.images == [str(tmp_path / "ok.jpg")]
    assert listing.refused == [(str(tmp_path / "two\nlines.jpg"), "file name holds a line break: rename the file")]


@pytest.mark.parametrize("orientation", [1, 6])
def test_an_upload_decodes_to_the_pixels_of_its_file(tmp_path, chelsea, orientation):
    """``d2lv serve`` decodes the request body as the workflow decodes the file (EXIF orientation applied)."""
    from d2lv.io.images import decode_image

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "upload.jpg"
    Image.fromarray(chelsea).save(path, quality=90, exif=exif)
    np.testing.assert_array_equal(decode_image(path.read_bytes()), load_image(path))


@pytest.mark.parametrize("body, words", [(b"", "empty file"), (b"GIF89a not really", "unreadable image")])
def test_a_bad_upload_is_an_image_error(body, words):
    from d2lv.io.images import decode_image

    with pytest.raises(ImageError, match=words):
        decode_image(body)


def test_an_upload_over_the_pixel_limit_is_a_decompression_bomb(tmp_path, chelsea):
    from d2lv.io.images import decode_image

    path = tmp_path / "big.png"
    Image.fromarray(chelsea).save(path)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(path.read_bytes(), max_pixels=chelsea.shape[0] * chelsea.shape[1] - 1)
