"""Image edits that turn a photo into a "copy", as in the ISC 2021 queries.

Each recipe is a function ``recipe(img, rng) -> img`` on RGB PIL images that
draws all of its parameters from the NumPy generator it is given, so an edit
is reproducible from a seed. Recipes are registered in :data:`RECIPES`; a new
recipe is one more function and one more entry there.

:data:`FAMILIES` groups edits the way the DISC21 queries were made (mild,
crop, geometry, text, emoji, filters, padding, paste, screenshot, meme and
chains of three of them). A family returns an :class:`Edited`: the image, the
edits applied and, when the photo ends up inside a larger picture (padding,
paste, screenshot, meme), the box it occupies there.

Most edits are done with AugLy 1.0.0, which predates NumPy 2 and Pillow 10;
:func:`ensure_augly` is the one place that patches it to run on current
versions. AugLy's fonts and emoji ship inside the package: nothing is
downloaded.
"""

from __future__ import annotations

import functools
import json
import math
import pickle
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


# --- edit families (how the DISC21 queries were made) ---------------------------

#: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive (as PIL crop boxes).
Box = tuple[int, int, int, int]

#: Supplies the other photo that the ``paste`` family (and image-border padding) puts the
#: edited photo onto; called only when needed.
Backdrop = Callable[[], Image.Image]


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


Family = Callable[[Image.Image, np.random.Generator, Backdrop | None], Edited]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def _fit_long_side(img: Image.Image, low: int, high: int) -> Image.Image:
    """``img`` scaled (with AugLy) so that its long side lies in ``[low, high]``."""
    long_side = max(img.size)
    factor = low / long_side if long_side < low else min(1.0, high / long_side)
    return img if factor == 1.0 else ensure_augly().scale(img, factor=factor)


# Elementary edits used by the families: ``edit(img, rng) -> img``, named after the AugLy
# function that does the work.


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
        line_color=_colour(rng),
        line_angle=float(rng.uniform(-90.0, 90.0)),
        line_density=float(rng.uniform(0.2, 0.8)),
        line_type=str(rng.choice(["solid", "dotted", "dashed"])),
        line_opacity=float(rng.uniform(0.3, 0.9)),
    )


_GEOMETRY_EDITS: dict[str, Recipe] = {
    "rotate": rotate,
    "perspective_transform": _perspective_transform,
    "skew": _skew,
    "hflip": _hflip,
    "change_aspect_ratio": _change_aspect_ratio,
}
_FILTER_EDITS: dict[str, Recipe] = {
    "grayscale": _grayscale,
    "blur": _blur,
    "pixelization": _pixelization,
    "random_noise": _random_noise,
    "opacity": _opacity,
    "overlay_stripes": _overlay_stripes,
}


def _edits(img: Image.Image, rng: np.random.Generator, named: Sequence[tuple[str, Recipe]]) -> Edited:
    for _, edit in named:
        img = edit(img, rng).convert("RGB")
    return Edited(img, tuple(name for name, _ in named))


def _placed(img: Image.Image, place: Callable[[Image.Image], Image.Image], step: str) -> Edited:
    """``place(img)``, with the box where ``place`` puts the photo."""
    return Edited(place(img).convert("RGB"), (step,), placement_box(place, img.size))


def placement_box(place: Callable[[Image.Image], Image.Image], size: tuple[int, int]) -> Box:
    """Where ``place`` puts an image of ``size``: the bounding box of the pixels that differ
    between placing an all-black and an all-white image.

    Exact whatever ``place`` does (resizing, padding, pasting into a template) as long as it
    is deterministic and draws nothing over the photo.

    Raises:
        ValueError: ``place`` shows no pixel of the photo.
    """
    dark, light = (
        np.asarray(place(Image.new("RGB", size, (v, v, v))).convert("RGB")) for v in (0, 255)
    )
    changed = np.any(dark != light, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if rows.size == 0:
        raise ValueError("the placement hides the photo entirely")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _paste_at(canvas: Image.Image, img: Image.Image, xy: tuple[int, int]) -> Image.Image:
    out = canvas.copy()
    out.paste(img, xy)
    return out


def _family_mild(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Rescale (0.5-1.5x), colour jitter, then JPEG at quality 20-60."""
    return _edits(
        img, rng, [("scale", _scale), ("color_jitter", _color_jitter), ("encoding_quality", _encoding_quality)]
    )


def _family_crop(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Crop keeping 30-75% of the area."""
    return Edited(crop(img, rng, area_range=(0.3, 0.75)).convert("RGB"), ("crop",))


def _family_geometry(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """One or two of: rotation, perspective, shear, horizontal flip, aspect-ratio change."""
    names = rng.choice(list(_GEOMETRY_EDITS), size=int(rng.integers(1, 3)), replace=False)
    return _edits(img, rng, [(str(n), _GEOMETRY_EDITS[str(n)]) for n in names])


def _family_text(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    return Edited(text(img, rng).convert("RGB"), ("overlay_text",))


def _family_emoji(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    return Edited(emoji(img, rng).convert("RGB"), ("overlay_emoji",))


def _family_filters(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """One of: greyscale, blur, pixelization, noise, fading, stripes."""
    name = str(rng.choice(list(_FILTER_EDITS)))
    return _edits(img, rng, [(name, _FILTER_EDITS[name])])


def _family_padding(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Borders of a plain colour (on two or four sides), of the photo itself blurred, or of
    another photo (only when a ``backdrop`` is given)."""
    imaugs = ensure_augly()
    modes = ["pad", "pad_blur"] + (["pad_square"] if max(img.size) > 1.1 * min(img.size) else [])
    mode = str(rng.choice(modes + (["pad_photo"] if backdrop is not None else [])))
    color = _colour(rng)
    if mode == "pad":
        w_factor, h_factor = (float(f) for f in rng.uniform(0.05, 0.4, size=2))
        return _placed(img, lambda im: imaugs.pad(im, w_factor=w_factor, h_factor=h_factor, color=color), mode)
    if mode == "pad_square":
        return _placed(img, lambda im: imaugs.pad_square(im, color=color), mode)
    width, height = (round(side * (1 + 2 * f)) for side, f in zip(img.size, rng.uniform(0.05, 0.4, size=2)))
    xy = (int(rng.integers(width - img.width + 1)), int(rng.integers(height - img.height + 1)))
    if mode == "pad_blur":
        stretched = imaugs.resize(img, width=width, height=height)
        canvas = imaugs.blur(stretched, radius=float(rng.uniform(0.02, 0.06) * max(width, height)))
    else:
        canvas = imaugs.resize(backdrop().convert("RGB"), width=width, height=height)
    return _placed(img, lambda im: _paste_at(canvas, im, xy), mode)


def _family_paste(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """The photo, scaled to cover 10-40% of the result, pasted onto another photo.

    The background is first enlarged, if needed, to be at least as large as the photo.
    """
    if backdrop is None:
        raise ValueError("the paste family needs a backdrop: another photo to paste onto")
    background = backdrop().convert("RGB")
    grow = max(img.size) / max(background.size)
    if grow > 1:
        background = ensure_augly().scale(background, factor=grow)
    bw, bh = background.size
    area = rng.uniform(0.1, 0.4)
    scale = min(math.sqrt(area * bw * bh / (img.width * img.height)), bw / img.width, bh / img.height)
    overlay_size = max(1, math.floor(img.height * scale)) / bh  # AugLy sizes the overlay by its height
    width_fraction = img.width * scale / bw
    x_pos = float(rng.uniform(0.0, max(0.0, 1.0 - width_fraction)))
    y_pos = float(rng.uniform(0.0, max(0.0, 1.0 - overlay_size)))
    return _placed(
        img,
        lambda im: ensure_augly().overlay_onto_background_image(
            im, background, overlay_size=overlay_size, x_pos=x_pos, y_pos=y_pos
        ),
        "overlay_onto_background_image",
    )


def _family_screenshot(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """The photo in AugLy's web or mobile screenshot template.

    Either the photo is resized into the template's picture slot, or the template is
    resized around the photo, which is then cropped to fill the slot or letterboxed in it.
    The photo is first brought to a long side of 200-640 px to keep templates moderate.
    """
    from augly.utils import SCREENSHOT_TEMPLATES_DIR

    template = str(Path(SCREENSHOT_TEMPLATES_DIR) / str(rng.choice(["web.png", "mobile.png"])))
    fit = int(rng.integers(3))  # 0: photo into template, 1: template around photo, cropped, 2: letterboxed

    def place(im: Image.Image) -> Image.Image:
        return ensure_augly().overlay_onto_screenshot(
            _fit_long_side(im, 200, 640),
            template_filepath=template,
            resize_src_to_match_template=fit == 0,
            crop_src_to_fit=fit == 1,
        )

    return _placed(img, place, "overlay_onto_screenshot")


#: Bold fonts shipped with AugLy that suit meme captions.
MEME_FONTS: tuple[str, ...] = (
    "Impact.ttf",
    "Raleway-ExtraBold.ttf",
    "Montserrat-Black.ttf",
    "OpenSans-ExtraBold.ttf",
    "LeagueSpartan-Bold.ttf",
    "Chunkfive.ttf",
)


@functools.cache
def _caption_words() -> tuple[str, ...]:
    """Plain English words from AugLy's misspelling table (package data)."""
    from augly.utils import TEXT_DIR

    with (Path(TEXT_DIR) / "misspelling.json").open() as f:
        words = json.load(f)
    return tuple(sorted({w.lower() for w in words if w.isascii() and w.isalpha() and 2 <= len(w) <= 9}))


def _family_meme(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """A caption of one or two short lines in a band above the photo (AugLy ``meme_format``).

    Photos narrower than 200 px are enlarged first so that the caption fits.
    """
    from augly.utils import FONTS_DIR

    words = _caption_words()
    lines = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(1, 3)))]
    caption = "\n".join(lines).upper() if rng.random() < 0.5 else "\n".join(lines)
    font = str(Path(FONTS_DIR) / MEME_FONTS[int(rng.integers(len(MEME_FONTS)))])
    band = rng.uniform(0.15, 0.35)
    light_background = rng.random() < 0.7
    background = (255, 255, 255) if light_background else tuple(int(c) for c in rng.integers(0, 64, size=3))
    text_color = tuple(int(c) for c in rng.integers(0, 64, size=3)) if light_background else (255, 255, 255)

    def place(im: Image.Image) -> Image.Image:
        if im.width < 200:
            im = ensure_augly().scale(im, factor=200 / im.width)
        return ensure_augly().meme_format(
            im,
            text=caption,
            font_file=font,
            caption_height=max(30, round(band * im.height)),
            text_color=text_color,
            meme_bg_color=background,
        )

    return _placed(img, place, "meme_format")


#: Families that move the photo's pixels around (a placement box cannot follow them).
MOVING_FAMILIES: tuple[str, ...] = ("crop", "geometry")
#: Families that put the photo inside a larger picture and report its box.
PLACING_FAMILIES: tuple[str, ...] = ("padding", "paste", "screenshot", "meme")

_SINGLE_FAMILIES: dict[str, Family] = {
    "mild": _family_mild,
    "crop": _family_crop,
    "geometry": _family_geometry,
    "text": _family_text,
    "emoji": _family_emoji,
    "filters": _family_filters,
    "padding": _family_padding,
    "paste": _family_paste,
    "screenshot": _family_screenshot,
    "meme": _family_meme,
}


def combo_members(rng: np.random.Generator, n: int = 3) -> list[str]:
    """``n`` different families to chain, at most one of them placing the photo.

    A placing family comes after every family that moves pixels, so that its box stays
    exact: what follows it only changes pixel values or rescales the whole image.
    """
    members: list[str] = []
    for name in rng.permutation(list(_SINGLE_FAMILIES)):
        if name in PLACING_FAMILIES and any(m in PLACING_FAMILIES for m in members):
            continue
        members.append(str(name))
        if len(members) == n:
            break
    placing = [i for i, m in enumerate(members) if m in PLACING_FAMILIES]
    last_moving = max((i for i, m in enumerate(members) if m in MOVING_FAMILIES), default=-1)
    if placing and placing[0] < last_moving:
        members.insert(last_moving, members.pop(placing[0]))
    return members


def chain_families(
    names: Sequence[str], img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None
) -> Edited:
    """Apply the families ``names`` in turn, keeping track of the photo's box.

    Raises:
        ValueError: a family that moves pixels, or a second placing one, follows a placement.
    """
    steps: list[str] = []
    box: Box | None = None
    for name in names:
        out = _SINGLE_FAMILIES[name](img, rng, backdrop)
        if box is not None:
            if name in MOVING_FAMILIES or out.box is not None:
                raise ValueError(f"family {name!r} cannot follow a placement: the photo's box would be lost")
            box = _scale_box(box, img.size, out.image.size)
        else:
            box = out.box
        img = out.image
        steps.extend(out.steps)
    return Edited(img, tuple(steps), box)


def _scale_box(box: Box, before: tuple[int, int], after: tuple[int, int]) -> Box:
    """``box`` after the whole image was resized from ``before`` to ``after``."""
    sx, sy = after[0] / before[0], after[1] / before[1]
    x0, y0, x1, y1 = box
    return (
        max(0, math.floor(x0 * sx)),
        max(0, math.floor(y0 * sy)),
        min(after[0], math.ceil(x1 * sx)),
        min(after[1], math.ceil(y1 * sy)),
    )


def _family_combo(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Three different families chained (see :func:`combo_members`)."""
    return chain_families(combo_members(rng), img, rng, backdrop)


#: Edit families, each ``family(img, rng, backdrop) -> Edited``, sampled evenly by benchmarks.
FAMILIES: dict[str, Family] = {**_SINGLE_FAMILIES, "combo": _family_combo}


def apply_family(
    name: str, img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None
) -> Edited:
    """Edit ``img`` with the family called ``name``; the result is always RGB.

    Args:
        backdrop: supplies the other photo for ``paste`` (required there, and for a
            ``combo`` that draws it) and for image-border ``padding`` (optional).
    """
    out = FAMILIES[name](img.convert("RGB"), rng, backdrop)
    return Edited(out.image.convert("RGB"), out.steps, out.box)
