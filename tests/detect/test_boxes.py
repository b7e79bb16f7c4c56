"""The box rule: which detected boxes of a query are worth cropping."""

from __future__ import annotations

import numpy as np
import pytest

from d2lv.detect.boxes import choose_boxes


def choose_box(*args, **kwargs):
    """The first box choose_boxes keeps (the original method's one crop), or None."""
    chosen = choose_boxes(*args, **kwargs)
    return chosen[0] if chosen else None


def test_choose_box_takes_the_most_confident_acceptable_box():
    boxes = np.array([[10, 10, 60, 60], [20, 20, 80, 70], [0, 0, 100, 100]], dtype=np.float32)
    scores = np.array([0.5, 0.7, 0.9])  # the most confident covers the whole frame: rejected
    assert choose_box(boxes, scores, 100, 100, 0.25) == ((20, 20, 80, 70), pytest.approx(0.7))


def test_choose_box_clips_and_rounds():
    box, _ = choose_box(np.array([[-5.4, 10.6, 70.5, 130.0]]), np.array([0.8]), 100, 120, 0.25)
    assert box == (0, 11, 70, 120)


@pytest.mark.parametrize(
    ("box", "score", "kept"),
    [
        ((10, 10, 60, 60), 0.3, True),
        ((10, 10, 60, 60), 0.2, False),  # below the confidence threshold
        ((0, 0, 92, 92), 0.9, True),  # 84.6% of the area
        ((0, 0, 93, 93), 0.9, False),  # 86.5%
        ((0, 10, 80, 30), 0.9, True),  # 4:1
        ((0, 10, 81, 30), 0.9, False),  # wider than 4:1
        ((10, 0, 30, 81), 0.9, False),  # taller than 1:4
        ((10, 10, 17, 60), 0.9, False),  # 7 px wide
        ((10, 10, 18, 30), 0.9, True),  # 8 px wide, 1:2.5
    ],
)
def test_choose_box_area_aspect_size_and_confidence_rules(box, score, kept):
    chosen = choose_box(np.array([box], dtype=float), np.array([score]), 100, 100, 0.25)
    assert (chosen is not None) == kept
    if kept:
        assert chosen == (box, pytest.approx(score))


def test_choose_box_rules_are_parameters():
    box = np.array([[0, 0, 93, 93], [0, 10, 81, 30]], dtype=float)
    assert choose_box(box[:1], np.array([0.9]), 100, 100, 0.25, max_area=0.9) is not None
    assert choose_box(box[1:], np.array([0.9]), 100, 100, 0.25, max_aspect=5) is not None
    assert choose_box(np.zeros((0, 4)), np.zeros(0), 100, 100, 0.25) is None


def test_a_second_crop_is_a_confident_box_beside_the_first():
    boxes = np.array([[0, 0, 50, 100], [50, 0, 100, 100], [5, 5, 55, 100], [60, 10, 90, 90]], dtype=float)
    scores = np.array([0.8, 0.6, 0.7, 0.5])  # the third overlaps the first, the fourth the second
    chosen = choose_boxes(boxes, scores, 100, 100, 0.25, max_crops=2, max_overlap=0.3)
    assert [box for box, _ in chosen] == [(0, 0, 50, 100), (50, 0, 100, 100)]
    assert [box for box, _ in choose_boxes(boxes, scores, 100, 100, 0.25, max_crops=3)] == [
        (0, 0, 50, 100), (50, 0, 100, 100)]  # nothing else is apart from both
    assert len(choose_boxes(boxes, scores, 100, 100, 0.25, max_crops=1)) == 1
    assert len(choose_boxes(boxes, scores, 100, 100, 0.65, max_crops=2)) == 1  # the second is not confident enough
    assert len(choose_boxes(boxes, scores, 100, 100, 0.25, max_crops=4, max_overlap=1.0)) == 4
