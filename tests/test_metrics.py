"""PSNR (eq. 35) against its closed form, and at its two ends."""
import math

import pytest
import torch

from dipcourse.metrics import psnr


@pytest.mark.parametrize("delta", [1e-3, 0.05, 0.3])
def test_psnr_of_a_constant_error_is_its_closed_form(delta):
    ref = torch.linspace(0.0, 0.8, 3 * 8 * 8).reshape(3, 8, 8)
    # every pixel off by ±delta: mse = delta², and the peak is max(ref) = 0.8, not 1
    signs = torch.where(torch.arange(ref.numel()) % 2 == 0, 1.0, -1.0).reshape(ref.shape)
    assert psnr(ref, ref + delta * signs) == pytest.approx(20 * math.log10(0.8 / delta), abs=1e-4)


def test_identical_images_give_plus_infinity():
    ref = torch.rand(1, 4, 4) + 0.1
    assert psnr(ref, ref.clone()) == math.inf


def test_an_error_beyond_float_range_gives_minus_infinity():
    # a diverging run's finite iterate whose squared error overflows float64: no math domain error
    ref = torch.rand(1, 4, 4, dtype=torch.float64) + 0.1
    assert psnr(ref, torch.full_like(ref, 1e200)) == -math.inf
