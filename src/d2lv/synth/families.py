"""Edit families: how the DISC21 queries of ISC 2021 were made, from the edits of :mod:`d2lv.synth.edits`.

:data:`FAMILIES` groups edits the way the DISC21 queries were made (mild, crop,
geometry, text, emoji, filters, padding, paste, screenshot, meme and chains of
three of them). A family returns an :class:`~d2lv.synth.edits.Edited`: the
image, the edits applied and, when the photo ends up inside a larger picture
(padding, paste, screenshot, meme), the box it occupies there
(:func:`placement_box`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from d2lv.io.images import Box
from d2lv.synth.edits import (
    FILTER_EDITS,
    GEOMETRY_EDITS,
    MILD_EDITS,
    Edited,
    Recipe,
    crop,
    emoji,
    ensure_augly,
    random_colour,
    text,
)

#: Supplies the other photo that the ``paste`` family (and image-border padding) puts the
#: edited photo onto; called only when needed.
Backdrop = Callable[[], Image.Image]

Family = Callable[[Image.Image, np.random.Generator, Backdrop | None], Edited]


def _fit_long_side(img: Image.Image, low: int, high: int) -> Image.Image:
    """``img`` scaled (with AugLy) so that its long side lies in ``[low, high]``."""
    long_side = max(img.size)
    factor = low / long_side if long_side < low else min(1.0, high / long_side)
    return img if factor == 1.0 else ensure_augly().scale(img, factor=factor)


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
    return _edits(img, rng, MILD_EDITS)


def _family_crop(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Crop keeping 30-75% of the area."""
    return Edited(crop(img, rng, area_range=(0.3, 0.75)).convert("RGB"), ("crop",))


def _family_geometry(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """One or two of: rotation, perspective, shear, horizontal flip, aspect-ratio change."""
    names = rng.choice(list(GEOMETRY_EDITS), size=int(rng.integers(1, 3)), replace=False)
    return _edits(img, rng, [(str(n), GEOMETRY_EDITS[str(n)]) for n in names])


def _family_text(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    return Edited(text(img, rng).convert("RGB"), ("overlay_text",))


def _family_emoji(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    return Edited(emoji(img, rng).convert("RGB"), ("overlay_emoji",))


def _family_filters(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """One of: greyscale, blur, pixelization, noise, fading, stripes."""
    name = str(rng.choice(list(FILTER_EDITS)))
    return _edits(img, rng, [(name, FILTER_EDITS[name])])


def _family_padding(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Edited:
    """Borders of a plain colour (on two or four sides), of the photo itself blurred, or of
    another photo (only when a ``backdrop`` is given)."""
    imaugs = ensure_augly()
    modes = ["pad", "pad_blur"] + (["pad_square"] if max(img.size) > 1.1 * min(img.size) else [])
    mode = str(rng.choice(modes + (["pad_photo"] if backdrop is not None else [])))
    color = random_colour(rng)
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
def caption_words() -> tuple[str, ...]:
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

    words = caption_words()
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


#: Area a training copy's random crop keeps, before its copy edit (:func:`random_copy_edit`).
TRAINING_CROP_AREA = (0.5, 1.0)


def random_copy_edit(img: Image.Image, rng: np.random.Generator, backdrop: Backdrop | None = None) -> Image.Image:
    """A training copy of ``img`` for the global descriptor: a random crop keeping 50-100% of the area, then
    the edit of a random family (the crop alone when that family cannot edit its shape, e.g. a meme caption
    on a 20 px high banner). ``backdrop`` supplies the other photo of the families that need one."""
    view = crop(img, rng, area_range=TRAINING_CROP_AREA)
    family = str(rng.choice(list(FAMILIES)))
    try:
        return apply_family(family, view, rng, backdrop).image
    except ValueError:
        return view
