"""Image edits that turn a photo into a "copy", as in the ISC 2021 queries.

Each edit is a function ``edit(img, rng) -> img`` on RGB PIL images that draws
all of its parameters from the NumPy generator it is given, so an edit is
reproducible from a seed. The recipes of the dev sets are registered in
:data:`RECIPES`; a new recipe is one more function and one more entry there.
The elementary edits that :mod:`d2lv.synth.families` combines into the DISC21
edit families are gathered in :data:`MILD_EDITS`, :data:`GEOMETRY_EDITS` and
:data:`FILTER_EDITS`, named after the AugLy function that does the work.

Most edits are done with AugLy 1.0.0, which predates NumPy 2 and Pillow 10;
:func:`ensure_augly` is the one place that patches it to run on current
versions. AugLy's fonts and emoji ship inside the package: nothing is
downloaded.
"""

from __future__ import annotations

import functools
import math
import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from d2lv.io.images import Box

Recipe = Callable[[Image.Image, np.random.Generator], Image.Image]


# --- AugLy compatibility -----------------------------------------------------


class _NumpyWithFloatAlias(types.ModuleType):
    """NumPy as AugLy 1.0 sees it: with ``np.float`` (removed in NumPy 1.24)."""

    float = float

    def __init__(self) -> None:
        super().__init__(np.__name__)

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)


def _getsize(self: ImageFont.FreeTypeFont, text: str, **kwargs: object) -> tuple[int, int]:
    """``FreeTypeFont.getsize`` (removed in Pillow 10): extent of ``text`` drawn at the origin."""
    _, _, right, bottom = self.getbbox(text, **kwargs)
    return right, bottom


def _getsize_multiline(
    self: ImageFont.FreeTypeFont, text: str, spacing: float = 4, **kwargs: object
) -> tuple[int, int]:
    """``FreeTypeFont.getsize_multiline`` (removed in Pillow 10)."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    _, _, right, bottom = draw.multiline_textbbox((0, 0), text, font=self, spacing=spacing, **kwargs)
    return right, bottom


def ensure_augly() -> types.ModuleType:
    """Import ``augly.image`` patched for NumPy 2 and Pillow >= 10, and return it.

    What breaks in AugLy 1.0.0 without the patch:

    * ``perspective_transform`` (and bounding-box helpers) use ``np.float``:
      AugLy's two modules that do get a NumPy proxy that has the alias, so
      NumPy itself is left untouched.
    * ``meme_format`` uses ``FreeTypeFont.getsize_multiline``: the removed
      font-measuring methods are added back to Pillow if missing.

    Safe to call any number of times.
    """
    import augly.image as imaugs
    import augly.image.utils.bboxes
    import augly.image.utils.utils

    for module in (augly.image.utils.bboxes, augly.image.utils.utils):
        if not isinstance(module.np, _NumpyWithFloatAlias):
            module.np = _NumpyWithFloatAlias()
    for name, method in (("getsize", _getsize), ("getsize_multiline", _getsize_multiline)):
        if not hasattr(ImageFont.FreeTypeFont, name):
            setattr(ImageFont.FreeTypeFont, name, method)
    return imaugs


# --- AugLy assets --------------------------------------------------------------


@functools.cache
def _augly_fonts() -> tuple[Path, ...]:
    """AugLy's bundled fonts that come with their glyph table (``.pkl``)."""
    from augly.utils import FONTS_DIR

    return tuple(p for p in sorted(Path(FONTS_DIR).glob("*.ttf")) if p.with_suffix(".pkl").is_file())


@functools.cache
def _printable_glyphs(font: Path) -> np.ndarray:
    """Indices into the font's glyph table of printable characters.

    ``overlay_text`` takes text as indices into that table; control characters
    such as ``\\r`` make Pillow's text layout fail.
    """
    with font.with_suffix(".pkl").open("rb") as f:
        codepoints = pickle.load(f)
    return np.array([i for i, c in enumerate(codepoints) if chr(c).isprintable()])


@functools.cache
def _augly_emojis() -> tuple[Path, ...]:
    from augly.utils import EMOJI_DIR

    return tuple(sorted(Path(EMOJI_DIR).rglob("*.png")))


def _pick(rng: np.random.Generator, items: tuple[Path, ...]) -> Path:
    return items[rng.integers(len(items))]


# --- recipes -------------------------------------------------------------------


def crop(img: Image.Image, rng: np.random.Generator, area_range: tuple[float, float] = (0.4, 0.8)) -> Image.Image:
    """Random crop keeping 40-80% (``area_range``) of the area, aspect ratio jittered by up to 4:3."""
    area = rng.uniform(*area_range)
    aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    w_frac = min(1.0, math.sqrt(area * aspect))
    h_frac = min(1.0, area / w_frac)
    w = max(1, round(img.width * w_frac))
    h = max(1, round(img.height * h_frac))
    left = int(rng.integers(img.width - w + 1))
    top = int(rng.integers(img.height - h + 1))
    return img.crop((left, top, left + w, top + h))


def rescale(
    img: Image.Image, rng: np.random.Generator, factor_range: tuple[float, float] = (0.3, 2.0)
) -> Image.Image:
    """Resize by a factor in 0.3-2.0 (``factor_range``), drawn log-uniformly so shrinking and
    enlarging are balanced."""
    factor = math.exp(rng.uniform(math.log(factor_range[0]), math.log(factor_range[1])))
    return ensure_augly().scale(img, factor=factor)


def rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by 5-30 degrees either way, cropped to the largest upright rectangle inside."""
    degrees = rng.uniform(5.0, 30.0) * rng.choice([-1, 1])
    return ensure_augly().rotate(img, degrees=float(degrees))


def text(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Overlay one to three lines of random characters in a random AugLy font and colour."""
    font = _pick(rng, _augly_fonts())
    glyphs = _printable_glyphs(font)
    lines = [rng.choice(glyphs, size=rng.integers(4, 16)).tolist() for _ in range(rng.integers(1, 4))]
    return ensure_augly().overlay_text(
        img,
        text=lines,
        font_file=str(font),
        font_size=rng.uniform(0.05, 0.2),
        opacity=rng.uniform(0.6, 1.0),
        color=tuple(int(c) for c in rng.integers(0, 256, size=3)),
        x_pos=rng.uniform(0.0, 0.6),
        y_pos=rng.uniform(0.0, 0.7),
    )


def emoji(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Overlay a random Twemoji, 10-40% of the image height, fully inside the image."""
    size = rng.uniform(0.1, 0.4)
    width_frac = min(1.0, size * img.height / img.width)  # emoji are square
    return ensure_augly().overlay_emoji(
        img,
        emoji_path=str(_pick(rng, _augly_emojis())),
        emoji_size=size,
        opacity=rng.uniform(0.7, 1.0),
        x_pos=rng.uniform(0.0, 1.0 - width_frac),
        y_pos=rng.uniform(0.0, 1.0 - size),
    )


def jpeg(img: Image.Image, rng: np.random.Generator, quality_range: tuple[int, int] = (30, 70)) -> Image.Image:
    """Re-encode as JPEG at quality 30-70 (``quality_range``, inclusive)."""
    return ensure_augly().encoding_quality(img, quality=int(rng.integers(quality_range[0], quality_range[1] + 1)))


def grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Drop colour (kept as a 3-channel image)."""
    return img.convert("L").convert("RGB")


RECIPES: dict[str, Recipe] = {
    "crop": crop,
    "rescale": rescale,
    "rotate": rotate,
    "text": text,
    "emoji": emoji,
    "jpeg": jpeg,
    "grayscale": grayscale,
}

#: Mild edits that may follow the primary one without hiding it.
SECONDARY_RECIPES: tuple[str, ...] = ("jpeg", "grayscale", "rescale")


def apply_recipe(name: str, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Apply the recipe called ``name``; the result is always RGB."""
    return RECIPES[name](img.convert("RGB"), rng).convert("RGB")


def random_edit(
    img: Image.Image,
    rng: np.random.Generator,
    primary: str | None = None,
    p_secondary: float = 0.3,
) -> tuple[Image.Image, list[str]]:
    """Apply one primary recipe, then with probability ``p_secondary`` a light secondary one.

    Args:
        primary: recipe name; drawn uniformly from :data:`RECIPES` when None.

    Returns:
        The edited RGB image and the names of the recipes applied, in order.
    """
    if primary is None:
        primary = str(rng.choice(list(RECIPES)))
    applied = [primary]
    if rng.random() < p_secondary:
        applied.append(str(rng.choice([r for r in SECONDARY_RECIPES if r != primary])))
    for name in applied:
        img = apply_recipe(name, img, rng)
    return img, applied



@dataclass(frozen=True)
class Edited:
    """An edited photo.

    Attributes:
        image: the result, RGB.
        steps: names of the elementary edits applied, in order (AugLy's function names
            where AugLy did the edit).
        box: where the photo lies in ``image`` when it was placed inside a larger picture
            (padding, paste, screenshot, meme); None when it fills the image.
    """

    image: Image.Image
    steps: tuple[str, ...]
    box: Box | None = None


# --- elementary edits of the families (see d2lv.synth.families) ------------------


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _scale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return rescale(img, rng, factor_range=(0.5, 1.5))


def _color_jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    brightness, contrast, saturation = (_log_uniform(rng, 0.6, 1.6) for _ in range(3))
    return ensure_augly().color_jitter(
        img, brightness_factor=brightness, contrast_factor=contrast, saturation_factor=saturation
    )


def _encoding_quality(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return jpeg(img, rng, quality_range=(20, 60))


def _perspective_transform(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    # Corners move by ~2-7% of the short side: far too little for the crop of the black
    # border to fail (that needs corners to cross half the image).
    return ensure_augly().perspective_transform(
        img,
        sigma=float(rng.uniform(0.02, 0.07) * min(img.size)),
        seed=int(rng.integers(2**31)),
        crop_out_black_border=bool(rng.random() < 0.5),
    )


def _skew(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shear along x or y."""
    factor = rng.uniform(0.1, 0.4) * rng.choice([-1, 1])
    return ensure_augly().skew(img, skew_factor=float(factor), axis=int(rng.integers(2)))


def _hflip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ensure_augly().hflip(img)


def _change_aspect_ratio(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Stretch (same area) to an aspect ratio 1.25-2x wider or taller than before."""
    change = _log_uniform(rng, 1.25, 2.0) ** rng.choice([-1, 1])
    return ensure_augly().change_aspect_ratio(img, ratio=img.width / img.height * change)


def _grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ensure_augly().grayscale(img, mode=str(rng.choice(["luminosity", "average"])))


def _blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ensure_augly().blur(img, radius=float(rng.uniform(0.003, 0.01) * max(img.size) + 0.5))


def _pixelization(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    ratio = max(rng.uniform(0.1, 0.4), 2 / min(img.size))  # at least 1 pixel a side
    return ensure_augly().pixelization(img, ratio=float(ratio))


def _random_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Additive Gaussian noise, variance 0.003-0.03 on a 0-1 scale.

    The same noise as AugLy's ``random_noise``, drawn from ``rng``: AugLy's reseeds
    NumPy's global generator, which parallel builders must not share.
    """
    sigma = math.sqrt(rng.uniform(0.003, 0.03))
    pixels = np.asarray(img, dtype=np.float32) / 255.0
    noisy = np.clip(pixels + rng.normal(0.0, sigma, size=pixels.shape), 0.0, 1.0)
    return Image.fromarray((noisy * 255.0).astype(np.uint8))


def _opacity(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Fade towards white."""
    return ensure_augly().opacity(img, level=float(rng.uniform(0.3, 0.7)))


def _overlay_stripes(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ensure_augly().overlay_stripes(
        img,
        line_width=float(rng.uniform(0.1, 0.7)),
        line_color=random_colour(rng),
        line_angle=float(rng.uniform(-90.0, 90.0)),
        line_density=float(rng.uniform(0.2, 0.8)),
        line_type=str(rng.choice(["solid", "dotted", "dashed"])),
        line_opacity=float(rng.uniform(0.3, 0.9)),
    )


#: The geometry family's edits (one or two of them).
GEOMETRY_EDITS: dict[str, Recipe] = {
    "rotate": rotate,
    "perspective_transform": _perspective_transform,
    "skew": _skew,
    "hflip": _hflip,
    "change_aspect_ratio": _change_aspect_ratio,
}
#: The filters family's edits (one of them).
FILTER_EDITS: dict[str, Recipe] = {
    "grayscale": _grayscale,
    "blur": _blur,
    "pixelization": _pixelization,
    "random_noise": _random_noise,
    "opacity": _opacity,
    "overlay_stripes": _overlay_stripes,
}
#: The mild family's edits, all of them in this order.
MILD_EDITS: tuple[tuple[str, Recipe], ...] = (
    ("scale", _scale),
    ("color_jitter", _color_jitter),
    ("encoding_quality", _encoding_quality),
)
