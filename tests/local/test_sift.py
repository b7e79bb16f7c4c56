"""RootSIFT extraction on real photos, its mirrored keypoints, and the OpenCV build that provides it."""

from __future__ import annotations

import cv2
import numpy as np

from d2lv.local import sift
from d2lv.local.params import SiftParams


class TestExtract:
    def test_keypoints_in_original_pixels_and_capped(self, photos):
        image = photos["astronaut"]  # 512x512, extracted at 300x300
        keypoints, descriptors = sift.extract(image, SiftParams(short_side=300, max_keypoints=400))
        assert 300 < len(keypoints) <= 400
        assert descriptors.dtype == np.uint8 and descriptors.shape == (len(keypoints), 128)
        assert keypoints[:, 0].max() > 400, "x must be rescaled to the original 512 px width"
        assert (keypoints[:, :2] >= 0).all() and (keypoints[:, :2] < 512).all()

    def test_rootsift_has_unit_norm(self, photos):
        _, descriptors = sift.extract(photos["chelsea"])
        norms = np.linalg.norm(sift.dequantize(descriptors), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=0.02)

    def test_small_image_is_upsampled_and_its_keypoints_stay_in_its_pixels(self, photos):
        small = cv2.resize(photos["coffee"], (200, 133))
        kept_small, _ = sift.extract(small, SiftParams(max_upscale=1.0))
        upsampled, _ = sift.extract(small, SiftParams(max_upscale=2.0))
        assert len(upsampled) > 1.5 * len(kept_small)
        assert upsampled[:, 0].max() < 200 and upsampled[:, 1].max() < 133

    def test_upsampling_is_capped(self):
        assert sift.extraction_scale(100, 50, 300, 2.0) == 2.0
        assert sift.extraction_scale(400, 200, 300, 2.0) == 1.5
        assert sift.extraction_scale(1200, 600, 300, 2.0) == 0.5
        assert sift.extraction_scale(100, 50, 300, 1.0) == 1.0

    def test_blank_image_has_no_keypoints(self):
        keypoints, descriptors = sift.extract(np.full((200, 300), 128, np.uint8))
        assert keypoints.shape == (0, 4) and descriptors.shape == (0, 128)


def faint_shapes() -> np.ndarray:
    """A low-texture graphic: a few discs of a shade close to the flat background's."""
    image = np.full((480, 640), 200, np.uint8)
    for (x, y, r), shade in zip([(150, 140, 60), (420, 300, 90), (520, 110, 40), (260, 360, 70)], (188, 212, 190, 210)):
        cv2.circle(image, (x, y), r, shade, thickness=-1)
    return image


def test_a_low_texture_image_is_detected_again_at_a_lower_contrast(photos):
    once = SiftParams(low_texture_keypoints=0)
    retried, _ = sift.extract(faint_shapes())
    plain, _ = sift.extract(faint_shapes(), once)
    assert len(plain) == 0 and len(retried) >= 8, "the discs' edges are below OpenCV's default contrast"
    textured = photos["astronaut"]
    np.testing.assert_array_equal(sift.extract(textured)[0], sift.extract(textured, once)[0])


def test_a_dithered_1_bit_copy_of_a_shrunk_photo_still_verifies(photos):
    """PIL's mode "1" dithers; SIFT at the dither's scale would see only dots (0 inliers without the blur)."""
    from PIL import Image

    from d2lv.local import verify
    from d2lv.local.params import VerifyParams
    from d2lv.local.store import ImageFeatures

    reference = photos["coffee"]  # grey, 600x400
    query = np.asarray(Image.fromarray(reference).resize((300, 200)).convert("1").convert("L"))
    assert sift.is_bilevel(query) and not sift.is_bilevel(reference)
    features = [ImageFeatures(name, image.shape[1], image.shape[0], *sift.extract(image))
                for name, image in (("q", query), ("r", reference))]
    assert verify.verify_pair(*features, VerifyParams()).n_inliers >= 20


def test_mirror_equals_extraction_on_the_mirrored_image(photos):
    image = photos["astronaut"]
    raw = cv2.SIFT_create(nfeatures=300)
    kps, des = raw.detectAndCompute(image, None)
    points = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in kps], np.float32)
    mirrored_points = sift.mirror_keypoints(points, image.shape[1])
    mirrored = sift.rootsift_uint8(des)[:, sift.MIRROR_PERMUTATION]
    flipped_kps = [cv2.KeyPoint(float(x), float(y), float(s), float(a), k.response, k.octave)
                   for (x, y, s, a), k in zip(mirrored_points, kps)]
    _, expected = raw.compute(np.ascontiguousarray(image[:, ::-1]), flipped_kps)
    error = np.abs(mirrored.astype(float) - sift.rootsift_uint8(expected)).mean()
    unpermuted = np.abs(sift.rootsift_uint8(des).astype(float) - sift.rootsift_uint8(expected)).mean()
    assert error < 0.2 * unpermuted


def test_inversion_equals_extraction_on_the_negative_image(photos):
    image = photos["astronaut"]
    raw = cv2.SIFT_create(nfeatures=300)
    kps, des = raw.detectAndCompute(image, None)
    turned = [cv2.KeyPoint(k.pt[0], k.pt[1], k.size, (k.angle + 180.0) % 360.0, k.response, k.octave) for k in kps]
    _, expected = raw.compute(np.ascontiguousarray(255 - image), turned)
    inverted = sift.rootsift_uint8(des)[:, sift.INVERSION_PERMUTATION]
    error = np.abs(inverted.astype(float) - sift.rootsift_uint8(expected)).mean()
    unpermuted = np.abs(sift.rootsift_uint8(des).astype(float) - sift.rootsift_uint8(expected)).mean()
    assert error < 0.2 * unpermuted


def test_only_the_contrib_headless_opencv_is_installed():
    from importlib import metadata

    installed = {dist.metadata["Name"].lower() for dist in metadata.distributions()}
    shadowing = {"opencv-python", "opencv-contrib-python", "opencv-python-headless"} & installed
    assert "opencv-contrib-python-headless" in installed
    assert not shadowing, f"these wheels also provide cv2 and may shadow the contrib build: {shadowing}"
    assert hasattr(cv2, "ximgproc"), "cv2 is not the contrib build"
