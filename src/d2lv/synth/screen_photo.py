"""A photo of a screen showing the copy: the ``screen_photo`` family of :mod:`d2lv.synth.hard_families`.

The copy is framed by a dark bezel, seen at an angle (a perspective warp) in front of a blurred,
dimmed room, and photographed: moiré (the beat between the camera's sensor and the screen's
pixel grid, here curved colour fringes), a glare, a slight blur and sensor noise. The copy's
box is the bounding box of its warped corners.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image, ImageFilter, ImageOps

from d2lv.io.images import Box, shrink_long_side
from d2lv.synth.edits import Edited
from d2lv.synth.graphics import gradient

#: Long side of the copy on the screen, at most (smaller copies keep their size).
SCREEN_SIDE = (480, 800)
STEPS = ("screen_bezel", "perspective_transform", "moire", "glare", "blur", "random_noise")


def screen_photo(img: Image.Image, rng: np.random.Generator, room: Image.Image | None = None) -> Edited:
    """``img`` on a screen, photographed; ``room``: the photo behind the screen (None: a dim gradient)."""
    shown = shrink_long_side(img.convert("RGB"), int(rng.integers(SCREEN_SIDE[0], SCREEN_SIDE[1] + 1)))
    bezel = max(4, round(rng.uniform(0.03, 0.08) * max(shown.size)))
    screen = ImageOps.expand(shown, border=bezel, fill=(int(rng.integers(5, 40)),) * 3)
    sw, sh = screen.size
    margin = rng.uniform(0.1, 0.3)
    size = (round(sw * (1 + 2 * margin)), round(sh * (1 + 2 * margin)))
    corners = np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]])
    jitter = (rng.uniform(0.02, 0.08) * rng.uniform(-1, 1, size=(4, 2)) * (sw, sh)).astype(np.float32)
    moved = corners + np.float32([margin * sw, margin * sh]) + jitter
    warp = cv2.getPerspectiveTransform(corners, moved)

    def warped(pixels: np.ndarray) -> np.ndarray:
        return cv2.warpPerspective(pixels, warp, size, flags=cv2.INTER_LINEAR)

    on_screen = warped(np.ones((sh, sw), np.float32))[..., None]
    display = np.zeros((sh, sw), np.float32)
    display[bezel : bezel + shown.height, bezel : bezel + shown.width] = 1
    lit = warped(display)[..., None]
    pixels = _room(room, size, rng) * (1 - on_screen) + warped(np.asarray(screen, np.float32)) * on_screen
    pixels *= 1 + lit * _moire(size, rng)
    pixels = _glare(pixels, rng)
    pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.5, 1.5))
    pixels += rng.normal(0, rng.uniform(2, 6), size=pixels.shape)
    inner = np.float32([[bezel, bezel], [bezel + shown.width, bezel], [bezel + shown.width, bezel + shown.height],
                        [bezel, bezel + shown.height]])
    box = _bounding_box(cv2.perspectiveTransform(inner[None], warp)[0], size)
    return Edited(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), STEPS, box)


def _room(room: Image.Image | None, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """What lies around the screen: the room photo filling ``size``, blurred and dimmed, or a dim gradient."""
    if room is None:
        backdrop = gradient(size, rng)
    else:
        backdrop = ImageOps.fit(room.convert("RGB"), size, Image.LANCZOS)
        backdrop = backdrop.filter(ImageFilter.GaussianBlur(rng.uniform(2, 6)))
    return np.asarray(backdrop, np.float32) * rng.uniform(0.35, 0.8)


def _moire(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Relative brightness changes (``HxWx3``) of curved fringes, 4-16 px apart, shifted per channel."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    along, across = xx * math.cos(angle) + yy * math.sin(angle), yy * math.cos(angle) - xx * math.sin(angle)
    period = rng.uniform(4, 16)
    bend = rng.uniform(0.5, 3) * period * np.sin(2 * math.pi * across / (rng.uniform(0.3, 1.0) * max(size)))
    phase = 2 * math.pi * (along + bend) / period
    shifts = rng.uniform(0, 2 * math.pi, size=3).astype(np.float32)
    return rng.uniform(0.05, 0.15) * np.cos(phase[..., None] + shifts)


def _glare(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft white highlight, 15-45% opaque at its centre, anywhere on the picture."""
    height, width = pixels.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    radius = rng.uniform(0.2, 0.6) * max(width, height)
    alpha = (rng.uniform(0.15, 0.45) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2))[..., None]
    return pixels * (1 - alpha) + 255 * alpha


def _bounding_box(points: np.ndarray, size: tuple[int, int]) -> Box:
    """The pixel box (``x1``/``y1`` exclusive) around ``points``, inside an image of ``size``."""
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    return max(0, int(x0)), max(0, int(y0)), min(size[0], int(x1)), min(size[1], int(y1))
