"""SIFT keypoints with RootSIFT descriptors, quantised to uint8.

RootSIFT (Arandjelović & Zisserman, 2012) is the element-wise square root of
the L1-normalised SIFT vector: the result has unit L2 norm, so squared L2
distances lie in [0, 2] and are comparable across images. Components never
exceed ~0.35, so ``ROOTSIFT_SCALE`` keeps 9 bits of precision in a uint8.
"""

from __future__ import annotations

import cv2
import numpy as np

ROOTSIFT_SCALE = 512.0
DESCRIPTOR_DIM = 128


def resize_short_side(gray: np.ndarray, short_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the short side is at most ``short_side``; return the image and its scale."""
    h, w = gray.shape[:2]
    scale = min(1.0, short_side / min(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, scale


def rootsift_uint8(descriptors: np.ndarray) -> np.ndarray:
    """Map raw SIFT descriptors (float32, Nx128) to quantised RootSIFT (uint8)."""
    l1 = descriptors.sum(axis=1, keepdims=True)
    root = np.sqrt(descriptors / np.maximum(l1, 1e-12))
    return np.clip(np.rint(root * ROOTSIFT_SCALE), 0, 255).astype(np.uint8)


def dequantize(descriptors: np.ndarray) -> np.ndarray:
    """uint8 RootSIFT to float32 vectors of (nearly) unit L2 norm."""
    return descriptors.astype(np.float32) / ROOTSIFT_SCALE


def extract(gray: np.ndarray, short_side: int = 300, max_keypoints: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Detect SIFT keypoints and compute RootSIFT descriptors.

    Returns:
        keypoints: float32 ``[N, 4]`` (x, y, size, angle) in pixels of ``gray``.
        descriptors: uint8 ``[N, 128]`` quantised RootSIFT, strongest first.
    """
    small, scale = resize_short_side(gray, short_side)
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    keypoints, descriptors = sift.detectAndCompute(small, None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 4), np.float32), np.zeros((0, DESCRIPTOR_DIM), np.uint8)
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:max_keypoints]
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


def mirror(keypoints: np.ndarray, descriptors: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints and descriptors of the left-right mirrored image, without re-extraction."""
    flipped = keypoints.copy()
    flipped[:, 0] = (width - 1) - keypoints[:, 0]
    flipped[:, 3] = (180.0 - keypoints[:, 3]) % 360.0
    return flipped, descriptors[:, MIRROR_PERMUTATION]
