"""SIFT keypoints with RootSIFT descriptors, quantised to uint8.

RootSIFT (Arandjelović & Zisserman, 2012) is the element-wise square root of
the L1-normalised SIFT vector: the result has unit L2 norm, so squared L2
distances lie in [0, 2] and are comparable across images. Components never
exceed ~0.35, so ``ROOTSIFT_SCALE`` keeps 9 bits of precision in a uint8.
"""

from __future__ import annotations

import cv2
import numpy as np

from d2lv.local.params import SiftParams

ROOTSIFT_SCALE = 512.0
DESCRIPTOR_DIM = 128


def extraction_scale(width: int, height: int, short_side: int, max_upscale: float) -> float:
    """The factor SIFT sees an image at: its short side brought to ``short_side``, upscaled at most
    ``max_upscale`` times (1: never upscaled)."""
    return min(max_upscale, short_side / max(1, min(width, height)))


def resize_for_sift(gray: np.ndarray, short_side: int, max_upscale: float = 1.0) -> tuple[np.ndarray, float]:
    """Scale so the short side is ``short_side`` (see :func:`extraction_scale`); the image and its scale.

    Small images are upsampled because SIFT's smallest octave needs a few pixels per feature: a copy
    shrunk to 130 px, or the crop of a small pasted copy, otherwise yields too few keypoints to verify.
    """
    h, w = gray.shape[:2]
    scale = extraction_scale(w, h, short_side, max_upscale)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC)
    return gray, scale


#: Blur (sigma, in the image's pixels) that brings a bilevel image (1-bit, dithered) back to grey levels
#: before SIFT: at the dither's own scale SIFT sees only the dot pattern, and a copy shrunk before it was
#: dithered verifies with no inlier at all.
BILEVEL_SIGMA = 0.8


def is_bilevel(gray: np.ndarray) -> bool:
    """Whether every pixel is the darkest or the lightest value (a 1-bit image, e.g. PIL mode "1")."""
    return gray.size > 0 and bool(np.all((gray == gray.min()) | (gray == gray.max())))


def rootsift_uint8(descriptors: np.ndarray) -> np.ndarray:
    """Map raw SIFT descriptors (float32, Nx128) to quantised RootSIFT (uint8)."""
    l1 = descriptors.sum(axis=1, keepdims=True)
    root = np.sqrt(descriptors / np.maximum(l1, 1e-12))
    return np.clip(np.rint(root * ROOTSIFT_SCALE), 0, 255).astype(np.uint8)


def dequantize(descriptors: np.ndarray) -> np.ndarray:
    """uint8 RootSIFT to float32 vectors of (nearly) unit L2 norm."""
    return descriptors.astype(np.float32) / ROOTSIFT_SCALE


def extract(gray: np.ndarray, params: SiftParams = SiftParams()) -> tuple[np.ndarray, np.ndarray]:
    """Detect SIFT keypoints and compute RootSIFT descriptors.

    A low-texture image (fewer than ``low_texture_keypoints``) is detected again at a lower contrast
    threshold: the edges of flat shapes and faint graphics then give some local evidence. A bilevel
    image is blurred first (:data:`BILEVEL_SIGMA`).

    Returns:
        keypoints: float32 ``[N, 4]`` (x, y, size, angle) in pixels of ``gray``.
        descriptors: uint8 ``[N, 128]`` quantised RootSIFT, strongest first.
    """
    if is_bilevel(gray):
        gray = cv2.GaussianBlur(gray, (0, 0), BILEVEL_SIGMA)
    small, scale = resize_for_sift(gray, params.short_side, params.max_upscale)
    keypoints, descriptors = cv2.SIFT_create(nfeatures=params.max_keypoints).detectAndCompute(small, None)
    if len(keypoints) < params.low_texture_keypoints:
        sift = cv2.SIFT_create(nfeatures=params.max_keypoints, contrastThreshold=params.low_texture_contrast)
        keypoints, descriptors = sift.detectAndCompute(small, None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 4), np.float32), np.zeros((0, DESCRIPTOR_DIM), np.uint8)
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:params.max_keypoints]
    points = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], np.float32)[order]
    points[:, :3] /= scale
    return points, rootsift_uint8(descriptors[order])


def _mirror_permutation() -> np.ndarray:
    # OpenCV lays a descriptor out as [row 4][column 4][orientation 8], relative
    # to the keypoint's orientation. Mirroring the image left-right reflects
    # the patch about its orientation axis: rows reverse and every
    # orientation bin k becomes -k (mod 8).
    index = np.arange(DESCRIPTOR_DIM).reshape(4, 4, 8)
    return index[::-1, :, (-np.arange(8)) % 8].reshape(-1)


MIRROR_PERMUTATION = _mirror_permutation()


def _inversion_permutation() -> np.ndarray:
    # In the negative of an image (255 - I) every gradient turns by 180 degrees: the same keypoints are
    # detected (DoG extrema swap sign), each oriented 180 degrees round, so its patch is sampled point-
    # reflected (rows and columns reverse) while every gradient, relative to the turned orientation,
    # falls in the same bin as before.
    index = np.arange(DESCRIPTOR_DIM).reshape(4, 4, 8)
    return index[::-1, ::-1, :].reshape(-1)


#: The descriptor of a keypoint in the negative image, from the one in the image: an inverted copy's
#: descriptors match its source's after this permutation (a solarized copy's, where it is inverted).
INVERSION_PERMUTATION = _inversion_permutation()


def mirror_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """The keypoints, in the same order, of the left-right mirrored image."""
    flipped = keypoints.copy()
    flipped[:, 0] = (width - 1) - keypoints[:, 0]
    flipped[:, 3] = (180.0 - keypoints[:, 3]) % 360.0
    return flipped

