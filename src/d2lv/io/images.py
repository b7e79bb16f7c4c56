"""Image discovery and loading: the one place that turns a file into pixels.

Every stage that reads an image goes through :func:`load_image`, so colour
modes, EXIF orientation, bit depth and hostile files are handled once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from d2lv.errors import D2lvError
from d2lv.options import Options, option

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Default pixel budget; larger files are treated as decompression bombs.
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own warning threshold

#: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive (as PIL crop boxes).
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class DecodeParams(Options):
    """Image decoding."""

    max_pixels: int = option(DEFAULT_MAX_PIXELS, "larger images are skipped as decompression bombs")


class ImageError(D2lvError):
    """An input file that cannot be used as an image; ``str(err)`` is the reason."""


def find_images(root: str | os.PathLike) -> Iterator[Path]:
    """Yield image files under ``root`` (recursively, sorted, hidden files skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(os.path.join(dirpath, name) for name in filenames
                     if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    # One global sort, in path order (part by part, as Path sorts): a walk yields a folder's files before
    # its subfolders, which is not path order (root/b.jpg would precede root/a/c.jpg). Strings, not
    # Paths, until the end: at a million files pathlib's parsing is most of the cost.
    found.sort(key=lambda path: path.split(os.sep))
    for path in found:
        yield Path(path)


def image_id(path: str | os.PathLike) -> str:
    """The id of an image is its file stem."""
    return (path if isinstance(path, Path) else Path(path)).stem


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise ImageError("file not found")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                if img.width * img.height > max_pixels:
                    raise ImageError(
                        f"decompression bomb: {img.width}x{img.height} exceeds max_pixels={max_pixels}"
                    )
                img.seek(0)  # first frame of animations
                img.load()
            except BaseException:
                img.close()  # do not leak the file handle of a rejected image
                raise
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"decompression bomb: {err}") from err
    except OSError as err:  # truncated, corrupt or not an image at all
        raise ImageError(f"unreadable image: {err}") from err
    except (ValueError, SyntaxError, EOFError) as err:
        raise ImageError(f"unreadable image: {err}") from err
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        # Multiply before dividing and round: (hi - lo) * (255 / (hi - lo)) can come out
        # as 254.999..., which truncation turned into 254 (e.g. for a range of 25 or 100).
        scaled = np.rint((arr - lo) * 255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, img)
    return img.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image as an ``HxWx3`` uint8 RGB array, upright.

    EXIF orientation is applied; CMYK, palette, 16-bit and greyscale images are
    converted; transparent pixels are composited onto white; animated files
    give their first frame.

    Raises:
        ImageError: the file is missing, empty, truncated, not an image or
            larger than ``max_pixels``.
    """
    with _open_checked(Path(path), max_pixels) as img:
        try:
            upright = ImageOps.exif_transpose(img)
        except (OSError, ValueError, SyntaxError) as err:
            raise ImageError(f"unreadable EXIF orientation: {err}") from err
        return np.asarray(_to_rgb(upright))


def load_gray(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image as an ``HxW`` uint8 luminance array, upright."""
    return to_gray(load_image(path, max_pixels))


def shrink_long_side(img: Image.Image, max_side: int) -> Image.Image:
    """``img`` resized (Lanczos, aspect kept) so that its long side is at most ``max_side``."""
    scale = max_side / max(img.size)
    if scale >= 1:
        return img
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """The ``HxW`` uint8 luminance of an ``HxWx3`` RGB array (Pillow's ITU-R 601-2 weights)."""
    return np.asarray(Image.fromarray(rgb).convert("L"))
