"""Image discovery and loading: the one place that turns a file into pixels.

Every stage that reads an image goes through :func:`load_image`, so colour
modes, EXIF orientation, bit depth and hostile files are handled once.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from d2lv.errors import D2lvError
from d2lv.options import Options, option

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Default pixel budget; larger files are treated as decompression bombs.
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own warning threshold

#: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive (as PIL crop boxes).
Box = tuple[int, int, int, int]
#: A tile's share of an image's long side; the two tiles of an image leave a gap of 1 - 2 * TILE_SHARE.
TILE_SHARE = 0.45


def tile_box(width: int, height: int, part: int) -> Box:
    """The pixel box of tile ``part`` (0: the first :data:`TILE_SHARE` of the long side, 1: the last) of a
    ``width`` x ``height`` image: two parts of one picture with no pixel in common."""
    horizontal = width >= height
    side = width if horizontal else height
    start = 0 if part == 0 else side - int(side * TILE_SHARE)
    stop = start + int(side * TILE_SHARE)
    return (start, 0, stop, height) if horizontal else (0, start, width, stop)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``[n, 4]`` (x0, y0, x1, y1; x1, y1 exclusive), row by row."""
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    area = lambda box: (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


@dataclass(frozen=True)
class DecodeParams(Options):
    """Image decoding."""

    max_pixels: int = option(DEFAULT_MAX_PIXELS, "larger images are skipped as decompression bombs", minimum=1)


class ImageError(D2lvError):
    """An input file that cannot be used as an image; ``str(err)`` is the reason."""


@dataclass(frozen=True)
class FolderListing:
    """Every entry under an input folder: the files d2lv decodes, and the rest with the reason.

    Nothing under the folder goes unaccounted for: ``refused`` names each file that is not
    decoded and each folder that is not searched, so that ``skipped.csv`` can list it. Paths are
    strings: the workflow lists the whole collection when it is parsed, and a million Paths cost seconds.
    """

    images: list[str]
    refused: list[tuple[str, str]]


def refusal_reason(name: str) -> str:
    """Why a file called ``name`` is not decoded as an image (``""``: it is decoded)."""
    if "\n" in name or "\r" in name:
        return "file name holds a line break: rename the file"
    if name.startswith("._"):
        return "AppleDouble metadata file (macOS keeps a file's attributes there), not an image"
    if name.startswith("."):
        return "hidden file"
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in IMAGE_EXTENSIONS:
        return f"unsupported format {suffix}" if suffix else "unsupported format (no file extension)"
    return ""


def _folder_refusal(path: str) -> str:
    """Why a subfolder is not searched (``""``: it is)."""
    if os.path.basename(path).startswith("."):
        return "hidden folder, not searched (tool state such as .git or .snakemake)"
    if os.path.islink(path):
        return "symbolic link to a folder, not followed: point the set at the folder it links to"
    return ""


def _path_order(path: str) -> str:
    """Sorts as :class:`pathlib.Path` does, part by part: the separator sorts before any character of a name."""
    return path.replace(os.sep, "\0")


def list_folder(root: str | os.PathLike) -> FolderListing:
    """List ``root`` recursively, in path order: image files, and every other entry with its reason.

    Hidden folders give one row each rather than one per file: they hold tool state (a ``.git``
    can hold a hundred thousand files), and walking them would cost more than the images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    images, refused = [], []

    def unreadable(err: OSError) -> None:  # os.walk would otherwise pass over a folder it cannot read
        refused.append((err.filename, f"folder not readable: {err.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        searched = []
        for name in dirnames:
            reason = _folder_refusal(os.path.join(dirpath, name))
            if reason:
                refused.append((os.path.join(dirpath, name), reason))
            else:
                searched.append(name)
        dirnames[:] = searched  # os.walk descends only into these
        for name in filenames:
            reason = refusal_reason(name)
            if reason:
                refused.append((os.path.join(dirpath, name), reason))
            else:
                images.append(os.path.join(dirpath, name))
    # One global sort, in path order (part by part, as Path sorts): a walk yields a folder's files before
    # its subfolders, which is not path order (root/b.jpg would precede root/a/c.jpg).
    images.sort(key=_path_order)
    refused.sort(key=lambda entry: _path_order(entry[0]))
    return FolderListing(images, refused)


def find_images(root: str | os.PathLike) -> Iterator[Path]:
    """Yield the image files under ``root`` (recursively, sorted); :func:`list_folder` says why the rest is not."""
    for path in list_folder(root).images:
        yield Path(path)


def reason_counts(reasons: Iterable[str]) -> str:
    """A one-line summary of refusal reasons, most frequent first: ``2x empty file (0 bytes), 1x hidden file``.

    A reason's details (after the first ``:``, e.g. the decoder's message) are left out, so that
    files refused for the same kind of reason are counted together.
    """
    counts = Counter(reason.split(":")[0].strip() for reason in reasons)
    return ", ".join(f"{n}x {kind}" for kind, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def image_id(path: str | os.PathLike) -> str:
    """The id of an image is its file stem (as :attr:`pathlib.PurePath.stem`, without making a Path: planning
    takes the id of every file of the collection)."""
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise ImageError("file not found")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    return _open_source(path, max_pixels)


def _open_source(source: Path | BinaryIO, max_pixels: int) -> Image.Image:
    """Open and decode ``source`` (a file, or bytes in memory), refusing what :func:`load_image` refuses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
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
    return _upright_rgb(_open_checked(Path(path), max_pixels))


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """:func:`load_image` of an encoded image held in memory (an upload): the same pixels as from its file.

    Raises:
        ImageError: as :func:`load_image`, for an empty, truncated, non-image or too large ``data``.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    return _upright_rgb(_open_source(io.BytesIO(data), max_pixels))


def _upright_rgb(opened: Image.Image) -> np.ndarray:
    with opened as img:
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
