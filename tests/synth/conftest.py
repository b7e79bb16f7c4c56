"""Fixtures of the synthesis tests: a real photo, and a guard against network access."""

from __future__ import annotations

import socket

import pytest
import skimage.data
from PIL import Image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
