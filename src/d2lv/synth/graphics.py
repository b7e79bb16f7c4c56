"""Procedural digital graphics: the low-texture pictures that photo benchmarks lack.

Gradients, flat shapes, charts, text cards, UI mock-ups and paper textures have few or no
corners for local features to hold on to, and look alike from one picture to the next: what a
copy detector meets in screenshots, slides and wallpapers. :func:`draw_graphic` draws one of
:data:`GRAPHIC_KINDS` from a NumPy generator, so a picture is reproducible from its seed.
Text uses fonts that ship with AugLy; charts are drawn by matplotlib's Agg canvas (no display,
no global pyplot state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from d2lv.synth.edits import random_colour
from d2lv.synth.families import MEME_FONTS, caption_words

Size = tuple[int, int]
Colour = tuple[int, int, int]

#: Plain text fonts shipped with AugLy, for text cards and UI mock-ups.
TEXT_FONTS: tuple[str, ...] = (
    "OpenSans-Regular.ttf",
    "IBMPlexSans-Regular.ttf",
    "IBMPlexSerif-Regular.ttf",
    "IBMPlexMono-Regular.ttf",
    "Montserrat-Regular.ttf",
    "SourceSansPro-Regular.ttf",
    "Raleway-Regular.ttf",
    "NotoSerif-Regular.ttf",
    "Ubuntu-R.ttf",
    "Titillium-Regular.ttf",
)
#: Bold and plain fonts, for captions drawn over pictures.
ALL_TEXT_FONTS: tuple[str, ...] = MEME_FONTS + TEXT_FONTS


def graphic_size(rng: np.random.Generator) -> Size:
    """A picture size between 640x384 and 1024x819, landscape four times in five."""
    width = int(rng.integers(640, 1025))
    height = round(width * rng.uniform(0.6, 0.8))
    return (width, height) if rng.random() < 0.8 else (height, width)


def font(name: str, size: float) -> ImageFont.FreeTypeFont:
    """AugLy's font ``name`` at ``size`` pixels."""
    from augly.utils import FONTS_DIR

    return ImageFont.truetype(str(Path(FONTS_DIR) / name), max(6, round(size)))


def pick_font(rng: np.random.Generator, names: tuple[str, ...], size: float) -> ImageFont.FreeTypeFont:
    return font(names[int(rng.integers(len(names)))], size)


def random_words(rng: np.random.Generator, low: int, high: int) -> str:
    """``low`` to ``high`` (inclusive) random English words."""
    words = caption_words()
    return " ".join(words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(low, high + 1))))


def words_fitting(rng: np.random.Generator, face: ImageFont.FreeTypeFont, width: float) -> str:
    """Random words, as many as fit in ``width`` pixels (at least one, cut to fit)."""
    line = random_words(rng, 1, 1)
    while face.getlength(line) > width and len(line) > 1:
        line = line[:-1]
    while True:
        longer = f"{line} {random_words(rng, 1, 1)}"
        if face.getlength(longer) > width:
            return line
        line = longer


def luminance(colour: Colour) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def contrasting(rng: np.random.Generator, background: Colour) -> Colour:
    """A dark colour on light backgrounds, a light one on dark backgrounds."""
    low, high = (0, 70) if luminance(background) > 128 else (190, 256)
    return tuple(int(c) for c in rng.integers(low, high, size=3))


def gradient(size: Size, rng: np.random.Generator) -> Image.Image:
    """A smooth linear (any angle) or radial (off-centre) gradient through 2-4 colours."""
    width, height = size
    n = int(rng.integers(2, 5))
    colours = rng.integers(0, 256, size=(n, 3)).astype(np.float64)
    stops = np.sort(np.concatenate([[0.0, 1.0], rng.uniform(0.15, 0.85, size=n - 2)]))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2 * math.pi)
        t = xx * math.cos(angle) + yy * math.sin(angle)
    else:  # off-centre, so that the picture has no mirror symmetry
        cx, cy = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.9) * height
        if rng.random() < 0.5:
            cx = width - cx
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    rgb = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1)
    return Image.fromarray(np.round(rgb).astype(np.uint8))


def _flat_background(size: Size, rng: np.random.Generator) -> Image.Image:
    """A flat colour (two times in three) or a gradient."""
    return Image.new("RGB", size, random_colour(rng)) if rng.random() < 2 / 3 else gradient(size, rng)


def shapes(size: Size, rng: np.random.Generator) -> Image.Image:
    """3-12 flat-colour rectangles, ellipses and polygons on a flat background."""
    img = Image.new("RGB", size, random_colour(rng))
    draw = ImageDraw.Draw(img)
    short = min(size)
    for _ in range(int(rng.integers(3, 13))):
        w, h = (float(v) for v in rng.uniform(0.05, 0.4, size=2) * short)
        x, y = float(rng.uniform(-w / 2, size[0] - w / 2)), float(rng.uniform(-h / 2, size[1] - h / 2))
        shape, colour = int(rng.integers(3)), random_colour(rng)
        if shape == 0:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        elif shape == 1:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            angles = np.sort(rng.uniform(0, 2 * math.pi, size=int(rng.integers(3, 7))))
            draw.polygon([(x + w / 2 * (1 + math.cos(a)), y + h / 2 * (1 + math.sin(a))) for a in angles], fill=colour)
    return img


def chart(size: Size, rng: np.random.Generator) -> Image.Image:
    """A bar, line, pie or scatter chart of random data, with a title and axis labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, facecolor=[c / 255 for c in _light(rng)])
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    palette = [np.append(rng.uniform(0.0, 0.9, size=3), 1.0) for _ in range(8)]
    kind = int(rng.integers(4))
    n = int(rng.integers(3, 9))
    labels = [random_words(rng, 1, 1) for _ in range(n)]
    if kind == 0:
        axes.bar(labels, rng.uniform(1, 100, size=n), color=palette[:n])
    elif kind == 1:
        for series in range(int(rng.integers(1, 4))):
            axes.plot(np.cumsum(rng.normal(0, 1, size=30)), color=palette[series], linewidth=rng.uniform(1, 4))
    elif kind == 2:
        axes.pie(rng.uniform(1, 10, size=n), labels=labels, colors=palette[:n])
    else:
        points = rng.normal(0, 1, size=(int(rng.integers(20, 200)), 2))
        axes.scatter(points[:, 0], points[:, 1], s=rng.uniform(5, 60), color=palette[0])
    axes.set_title(random_words(rng, 2, 5).capitalize(), fontsize=rng.uniform(12, 22))
    if kind != 2:
        axes.set_xlabel(random_words(rng, 1, 2))
        axes.set_ylabel(random_words(rng, 1, 2))
        axes.grid(rng.random() < 0.5)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _light(rng: np.random.Generator) -> Colour:
    return tuple(int(c) for c in rng.integers(225, 256, size=3))


def text_card(size: Size, rng: np.random.Generator) -> Image.Image:
    """A few lines of random words, the first one larger, on a flat or gradient background."""
    img = _flat_background(size, rng)
    draw = ImageDraw.Draw(img)
    base = tuple(int(c) for c in np.asarray(img).reshape(-1, 3).mean(axis=0))
    colour = contrasting(rng, base)
    margin = rng.uniform(0.05, 0.12) * size[0]
    name = TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))]
    text_size = rng.uniform(0.035, 0.07) * min(size)
    y = rng.uniform(0.05, 0.2) * size[1]
    for line in range(int(rng.integers(3, 9))):
        face = font(name, text_size * (1.6 if line == 0 else 1.0))
        draw.text((margin, y), words_fitting(rng, face, size[0] - 2 * margin), font=face, fill=colour)
        y += face.size * rng.uniform(1.3, 1.8)
        if y > size[1] - face.size:
            break
    return img


def ui_layout(size: Size, rng: np.random.Generator) -> Image.Image:
    """An app or web page mock-up: header bar, maybe a sidebar, cards with text and buttons."""
    width, height = size
    img = Image.new("RGB", size, _light(rng))
    draw = ImageDraw.Draw(img)
    accent = random_colour(rng)
    header = round(rng.uniform(0.08, 0.14) * height)
    draw.rectangle((0, 0, width, header), fill=accent)
    face = pick_font(rng, TEXT_FONTS, header * 0.45)
    draw.text((header * 0.4, header * 0.25), random_words(rng, 1, 3).title(), font=face, fill=contrasting(rng, accent))
    left = 0
    if rng.random() < 0.6:
        left = round(rng.uniform(0.15, 0.25) * width)
        draw.rectangle((0, header, left, height), fill=tuple(int(c) for c in rng.integers(40, 230, size=3)))
    columns, rows = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    gap = rng.uniform(0.02, 0.04) * width
    card_w = (width - left - gap * (columns + 1)) / columns
    card_h = (height - header - gap * (rows + 1)) / rows
    for col in range(columns):
        for row in range(rows):
            x0, y0 = left + gap + col * (card_w + gap), header + gap + row * (card_h + gap)
            _card(draw, (x0, y0, x0 + card_w, y0 + card_h), rng, accent)
    return img


def _card(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], rng: np.random.Generator,
          accent: Colour) -> None:
    """A white card with a title, grey text lines and a button in the accent colour."""
    x0, y0, x1, y1 = box
    draw.rounded_rectangle(box, radius=rng.uniform(0, 16), fill=(255, 255, 255), outline=(210, 210, 210))
    pad = 0.08 * min(x1 - x0, y1 - y0)
    face = pick_font(rng, TEXT_FONTS, min(28.0, 0.12 * (y1 - y0)))
    draw.text((x0 + pad, y0 + pad), words_fitting(rng, face, x1 - x0 - 2 * pad), font=face, fill=(30, 30, 30))
    y = y0 + pad + face.size * 1.8
    while y + 10 < y1 - pad - 0.2 * (y1 - y0):
        draw.rectangle((x0 + pad, y, x0 + pad + rng.uniform(0.4, 1.0) * (x1 - x0 - 2 * pad), y + 6), fill=(190,) * 3)
        y += 16
    button = (x0 + pad, y1 - pad - 0.14 * (y1 - y0), x0 + pad + 0.4 * (x1 - x0), y1 - pad)
    draw.rounded_rectangle(button, radius=6, fill=accent)


def paper(size: Size, rng: np.random.Generator) -> Image.Image:
    """Off-white paper: a faint blotchy tint, fibres and fine grain."""
    width, height = size
    base = rng.integers(225, 250) + rng.integers(-8, 9, size=3)
    blotches = Image.fromarray(rng.normal(0, 1, size=(max(2, height // 64), max(2, width // 64))).astype(np.float32))
    tint = np.asarray(blotches.resize(size, Image.BICUBIC))[..., None] * rng.uniform(2, 8)
    fibres = Image.new("L", size, 128)
    draw = ImageDraw.Draw(fibres)
    for _ in range(int(rng.integers(150, 600))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(10, 60)
        points = [(x + t * length * math.cos(angle + 0.3 * math.sin(3 * t)), y + t * length * math.sin(angle))
                  for t in np.linspace(0, 1, 6)]
        draw.line(points, fill=int(rng.integers(90, 170)), width=1)
    fibre_shade = (np.asarray(fibres.filter(ImageFilter.GaussianBlur(0.6)), np.float64) - 128)[..., None] * 0.5
    grain = rng.normal(0, rng.uniform(2, 6), size=(height, width, 1))
    return Image.fromarray(np.clip(base + tint + fibre_shade + grain, 0, 255).astype(np.uint8))


_DRAWERS: dict[str, Callable[[Size, np.random.Generator], Image.Image]] = {
    "gradient": gradient,
    "shapes": shapes,
    "chart": chart,
    "text_card": text_card,
    "ui": ui_layout,
    "paper": paper,
}
#: What :func:`draw_graphic` can draw.
GRAPHIC_KINDS: tuple[str, ...] = tuple(_DRAWERS)


def draw_graphic(kind: str, rng: np.random.Generator) -> Image.Image:
    """A ``kind`` graphic (one of :data:`GRAPHIC_KINDS`), RGB, of :func:`graphic_size`, drawn from ``rng``."""
    return _DRAWERS[kind](graphic_size(rng), rng).convert("RGB")
