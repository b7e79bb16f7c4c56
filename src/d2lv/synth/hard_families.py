"""The edit families of the hard benchmark (:mod:`d2lv.synth.hard_bench`): edits that DISC21 has few of.

Each family is ``family(img, rng, backdrop) -> Edited`` like those of :mod:`d2lv.synth.families`,
whose ``mild``, ``meme``, ``screenshot``, ``paste`` and (inside ``stacked``) ``crop``, ``text``,
``emoji`` and ``filters`` families it reuses. The new ones shrink the copy to a thumbnail,
compress it to blocks, turn it by exact right angles, flip it, change its tones, crop a small
part, paste it small onto a photo, put it in a collage, photograph it on a screen
(:mod:`d2lv.synth.screen_photo`), stack four edits, or cover a third to a half of it with text.
Families that place the copy in a larger picture report its box (:func:`d2lv.synth.families.placement_box`
where the placement draws nothing over the copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from d2lv.io.images import Box, shrink_long_side
from d2lv.synth.edits import Edited, Recipe, crop, jpeg, random_colour
from d2lv.synth.families import FAMILIES, Backdrop, Family, placement_box
from d2lv.synth.graphics import ALL_TEXT_FONTS, GRAPHIC_KINDS, contrasting, draw_graphic, pick_font, words_fitting
from d2lv.synth.screen_photo import screen_photo


def _one(img: Image.Image, step: str) -> Edited:
    return Edited(img.convert("RGB"), (step,))


def _needs(backdrop: Backdrop | None, family: str) -> Backdrop:
    if backdrop is None:
        raise ValueError(f"the {family} family needs a backdrop: a photo to put the copy onto")
    return backdrop


def _family_tiny(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """A thumbnail: long side 96-160 px."""
    return _one(shrink_long_side(img, int(rng.integers(96, 161))), "thumbnail")


def _family_jpeg_heavy(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """JPEG at quality 5-12: blocks and ringing."""
    return _one(jpeg(img, rng, quality_range=(5, 12)), "encoding_quality")


#: The exact right-angle rotations (counter-clockwise), by PIL's transposition.
ROTATIONS: dict[int, Image.Transpose] = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}
#: The flips: upside down, or mirrored about the main diagonal.
FLIPS: dict[str, Image.Transpose] = {"vflip": Image.Transpose.FLIP_TOP_BOTTOM, "transpose": Image.Transpose.TRANSPOSE}


def _family_rotate(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """An exact rotation by 90, 180 or 270 degrees (counter-clockwise), no pixel resampled."""
    degrees = list(ROTATIONS)[int(rng.integers(len(ROTATIONS)))]
    return _one(img.transpose(ROTATIONS[degrees]), f"rotate_{degrees}")


def _family_flip(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Upside down, or transposed (mirrored about the main diagonal)."""
    name = list(FLIPS)[int(rng.integers(len(FLIPS)))]
    return _one(img.transpose(FLIPS[name]), name)


def _hue_shift(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Every hue turned by 60-300 degrees."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.integers(43, 214))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _duotone(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Grey levels mapped from a dark colour to a light one."""
    dark, light = (tuple(int(c) for c in rng.integers(low, low + 100, size=3)) for low in (0, 156))
    return ImageOps.colorize(img.convert("L"), black=dark, white=light)


#: The tone family's edits (one of them).
TONE_EDITS: dict[str, Recipe] = {
    "invert": lambda img, rng: ImageOps.invert(img),
    "posterize": lambda img, rng: ImageOps.posterize(img, bits=int(rng.integers(1, 4))),
    "solarize": lambda img, rng: ImageOps.solarize(img, threshold=int(rng.integers(64, 129))),
    "hue_shift": _hue_shift,
    "duotone": _duotone,
}


def _family_tone(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """One of: invert, posterize (1-3 bits), solarize, hue shift, duotone."""
    name = list(TONE_EDITS)[int(rng.integers(len(TONE_EDITS)))]
    return _one(TONE_EDITS[name](img, rng), name)


def _family_small_crop(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Crop keeping 8-25% of the area."""
    return _one(crop(img, rng, area_range=(0.08, 0.25)), "crop")


def _pasted(canvas: Image.Image, img: Image.Image, size: tuple[int, int], xy: tuple[int, int], step: str) -> Edited:
    """``img`` resized to ``size`` and pasted onto ``canvas`` at ``xy``, with its box."""

    def place(im: Image.Image) -> Image.Image:
        out = canvas.copy()
        out.paste(im.resize(size, Image.LANCZOS), xy)
        return out

    return Edited(place(img), (step,), placement_box(place, img.size))


def _family_small_paste(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """The copy, scaled to cover 5-20% of a photo, pasted onto it."""
    background = _needs(backdrop, "small_paste")().convert("RGB")
    (bw, bh), (w, h) = background.size, img.size
    scale = min(math.sqrt(rng.uniform(0.05, 0.2) * bw * bh / (w * h)), bw / w, bh / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    xy = (int(rng.integers(bw - size[0] + 1)), int(rng.integers(bh - size[1] + 1)))
    return _pasted(background, img, size, xy, "paste")


#: Long side of a collage, at most.
COLLAGE_SIDE = 1024
#: Chance that a collage cell shows a freshly drawn graphic rather than a photo.
COLLAGE_GRAPHIC_SHARE = 0.3


def _family_collage(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """A 2x2 or 3x3 grid of equal cells: the copy in one, photos or fresh graphics in the others.

    Without a backdrop, every other cell is a graphic. No cell shows a reference: photos come
    from the backdrop, graphics are drawn anew from ``rng``.
    """
    n = int(rng.choice([2, 3]))
    gap = int(rng.integers(0, 13))
    scale = min(1.0, (COLLAGE_SIDE - (n + 1) * gap) / (n * max(img.size)))
    cell = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    canvas = Image.new("RGB", (n * cell[0] + (n + 1) * gap, n * cell[1] + (n + 1) * gap), random_colour(rng))
    corners = [(gap + col * (cell[0] + gap), gap + row * (cell[1] + gap)) for row in range(n) for col in range(n)]
    slot = int(rng.integers(n * n))
    for k, xy in enumerate(corners):
        if k != slot:
            canvas.paste(ImageOps.fit(_collage_filler(rng, backdrop), cell, Image.LANCZOS), xy)
    return _pasted(canvas, img, cell, corners[slot], f"collage_{n}x{n}")


def _collage_filler(rng: np.random.Generator, backdrop: Backdrop | None) -> Image.Image:
    if backdrop is None or rng.random() < COLLAGE_GRAPHIC_SHARE:
        return draw_graphic(GRAPHIC_KINDS[int(rng.integers(len(GRAPHIC_KINDS)))], rng)
    return backdrop().convert("RGB")


def _family_screen_photo(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """A photo of a screen showing the copy (:func:`d2lv.synth.screen_photo.screen_photo`)."""
    return screen_photo(img, rng, None if backdrop is None else backdrop())


def text_line_boxes(size: tuple[int, int], rng: np.random.Generator) -> list[Box]:
    """2-6 full-width, non-overlapping bands that together cover 30-50% of a ``size`` image."""
    width, height = size
    coverage = rng.uniform(0.32, 0.47)
    n_lines = int(rng.integers(2, 7))
    line = max(1, round(coverage * height / n_lines))
    slots = np.sort(rng.choice(height // line, size=n_lines, replace=False))
    return [(0, int(s) * line, width, (int(s) + 1) * line) for s in slots]


def _family_heavy_text(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Text over 30-50% of the image (:func:`text_line_boxes`): caption blocks, or outlined lines."""
    out = img.copy()
    for box in text_line_boxes(img.size, rng):
        band = out.crop(box)  # drawn apart, so that nothing spills out of the band
        draw = ImageDraw.Draw(band)
        face = pick_font(rng, ALL_TEXT_FONTS, 0.7 * band.height)
        if rng.random() < 0.5:
            background = random_colour(rng)
            draw.rectangle((0, 0, band.width, band.height), fill=background)
            colour, outline = contrasting(rng, background), None
        else:
            colour, outline = (255, 255, 255), (0, 0, 0)
        indent = rng.uniform(0.0, 0.1) * band.width
        line = words_fitting(rng, face, band.width - indent)
        draw.text((indent, 0.1 * band.height), line, font=face, fill=colour,
                  stroke_width=max(1, band.height // 20) if outline else 0, stroke_fill=outline)
        out.paste(band, box[:2])
    return _one(out, "overlay_text_blocks")


def _family_meme_screenshot(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """The ``meme`` or the ``screenshot`` family of :mod:`d2lv.synth.families`, as likely."""
    return FAMILIES[str(rng.choice(["meme", "screenshot"]))](img, rng, backdrop)


#: What ``stacked`` draws its four edits from, one per stage, in this order: reframe, recolour,
#: overlay, degrade. Each is mild enough that the four together keep the copy findable.
STACK_STAGES: tuple[tuple[str, ...], ...] = (("crop", "rotate", "flip"), ("tone", "filters"), ("text", "emoji"),
                                             ("mild",))


def _family_stacked(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Four edits stacked, one from each of :data:`STACK_STAGES` (e.g. crop, tone, text, mild)."""
    names = [stage[int(rng.integers(len(stage)))] for stage in STACK_STAGES]
    return chain(names, img, rng)


def chain(names: Sequence[str], img: Image.Image, rng: np.random.Generator) -> Edited:
    """Families of :data:`HARD_FAMILIES` or :data:`d2lv.synth.families.FAMILIES` (that do not place) in turn."""
    steps: list[str] = []
    for name in names:
        edited = (HARD_FAMILIES[name] if name in HARD_FAMILIES else FAMILIES[name])(img, rng, None)
        img, steps = edited.image, steps + list(edited.steps)
    return Edited(img, tuple(steps))


#: The hard benchmark's edit families, each ``family(img, rng, backdrop) -> Edited``, sampled evenly.
HARD_FAMILIES: dict[str, Family] = {
    "mild": FAMILIES["mild"],
    "tiny": _family_tiny,
    "jpeg_heavy": _family_jpeg_heavy,
    "rotate": _family_rotate,
    "flip": _family_flip,
    "tone": _family_tone,
    "small_crop": _family_small_crop,
    "small_paste": _family_small_paste,
    "collage": _family_collage,
    "screen_photo": _family_screen_photo,
    "stacked": _family_stacked,
    "heavy_text": _family_heavy_text,
    "meme_screenshot": _family_meme_screenshot,
    "paste_photo": FAMILIES["paste"],
}
#: Families that cannot do without a backdrop (another photo to put the copy onto).
BACKDROP_NEEDED: tuple[str, ...] = ("small_paste", "paste_photo")


def apply_hard_family(name: str, img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None
                      ) -> Edited:
    """Edit ``img`` with the hard family ``name``; the result is always RGB."""
    out = HARD_FAMILIES[name](img.convert("RGB"), rng, backdrop)
    return Edited(out.image.convert("RGB"), out.steps, out.box)
