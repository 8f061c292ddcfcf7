"""Tests for dipcourse.data: bundled images load offline, with the documented shapes and errors."""
import socket

import numpy as np
import pytest
import skimage.data
import torch

from dipcourse import data


@pytest.fixture
def no_network(monkeypatch):
    """Make every attempt to open a network connection fail loudly."""
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_every_image_loads_offline(no_network):
    data._raw.cache_clear()  # make sure nothing comes from an earlier, online load
    names = data.available_images()
    assert len(names) >= 10
    for name in names:
        for gray in (False, True):
            image = data.load_image(name, size=32, gray=gray)
            assert image.shape == ((1 if gray else 3), 32, 32), name
            assert image.dtype == torch.float32
            assert 0.0 <= image.min() and image.max() <= 1.0
            assert image.std() > 0.01, f"{name} should not be constant"


def test_colour_image_matches_a_manual_centre_crop():
    raw = skimage.data.astronaut()  # 512 × 512: the crop is the whole image
    full = data.load_image("astronaut", size=512)
    np.testing.assert_allclose(full.numpy(), raw.transpose(2, 0, 1) / 255.0, atol=1e-6)

    raw = skimage.data.rocket()  # 427 × 640: the centred square starts at column 106
    crop = data.load_image("rocket", size=427)
    np.testing.assert_allclose(crop.numpy(), raw[:, 106:533].transpose(2, 0, 1) / 255.0,
                               atol=1e-6)


def test_resize_is_anti_aliased():
    # Gravel is a fine texture. Shrunk 512 -> 16 with a low-pass first, it becomes a nearly flat
    # gray of the same mean; plain subsampling (every 32nd pixel) would keep its full contrast.
    raw = skimage.data.gravel() / 255.0
    image = data.load_image("gravel", size=16, gray=True)[0].numpy()
    assert abs(image.mean() - raw.mean()) < 1e-3
    assert image.std() < 0.3 * raw[::32, ::32].std()


def test_gray_photograph_in_colour_is_replicated():
    image = data.load_image("camera", size=64, gray=False)
    assert image.shape == (3, 64, 64)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert torch.allclose(image[0], data.load_image("camera", size=64, gray=True)[0])


def test_colour_photograph_in_gray_uses_luma():
    colour = data.load_image("coffee", size=64)
    gray = data.load_image("coffee", size=64, gray=True)
    luma = 0.2125 * colour[0] + 0.7154 * colour[1] + 0.0721 * colour[2]
    assert torch.allclose(gray[0], luma, atol=2e-2)


def test_unknown_name_lists_what_is_available():
    with pytest.raises(ValueError, match="astronaut") as info:
        data.load_image("lena")
    assert "lena" in str(info.value)
    assert "camera" in str(info.value)


@pytest.mark.parametrize("size", [0, 3, -8, 10_000])
def test_bad_size_is_refused(size):
    with pytest.raises(ValueError, match="size must be between"):
        data.load_image("astronaut", size=size)


@pytest.mark.parametrize("size", [64.0, "64", True, None])
def test_non_integer_size_is_refused(size):
    with pytest.raises(TypeError, match="integer"):
        data.load_image("astronaut", size=size)
