"""The demo set: a tiny dev set (:mod:`d2lv.synth.devset`) made from photos shipped with scikit-image."""

from __future__ import annotations

from pathlib import Path

from d2lv.synth.devset import build_devset
from d2lv.synth.layout import planned_files

#: Real photographs shipped in ``skimage.data`` (synthetic, binary, near-duplicate
#: and nearly textureless images are left out).
DEMO_PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
DEMO_REFERENCES = 8
DEMO_COPIES = 8
DEMO_NONCOPIES = 4


def planned_demo_files(out: Path) -> dict[str, list[Path]]:
    """The image files :func:`make_demo` writes, without writing anything."""
    return planned_files(out, DEMO_REFERENCES, DEMO_COPIES + DEMO_NONCOPIES)


def make_demo(out: Path, seed: int = 0, progress: bool = True) -> None:
    """Build a tiny benchmark from the photos shipped with scikit-image (no download)."""
    build_devset(demo_photos(), Path(out), DEMO_REFERENCES, DEMO_COPIES, DEMO_NONCOPIES, seed, progress)


def demo_photos() -> list[Path]:
    """The files of :data:`DEMO_PHOTOS` that this scikit-image ships."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in DEMO_PHOTOS if (folder / name).is_file()]
