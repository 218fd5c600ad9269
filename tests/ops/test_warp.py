"""``warp`` (docs/design.md §2, §7) against slicing and a brute-force bilinear reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spgnet import SPGNetError
from spgnet.ops.warp import warp


def ref_bilinear(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear sample of ``img (C, H, W)`` at pixel (x, y), zeros outside (grid_sample 'zeros')."""
    c, h, w = img.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = np.zeros(c)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def test_warp_integer_flow_is_a_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 9, generator=g)
    flow = torch.zeros(2, 2, 7, 9)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # output (r, c) reads input (r - 1, c + 2)
    out = warp(x, flow)
    expected = torch.zeros_like(x)
    expected[:, :, 1:, :-2] = x[:, :, :-1, 2:]
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(warp(x, flow, padding_mode="border")[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-5)


def test_warp_zero_flow_is_identity_and_roll_matches():
    x = torch.randn(1, 2, 6, 5)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 6, 5)), x, atol=1e-6)
    flow = torch.zeros(1, 2, 6, 5)
    flow[:, 1] = 1.0  # read one row down: torch.roll by -1, last row out of the image
    rolled = torch.roll(x, -1, dims=2)
    assert torch.allclose(warp(x, flow)[:, :, :-1], rolled[:, :, :-1], atol=1e-6)
    assert warp(x, flow)[:, :, -1].abs().max() == 0


def test_warp_hand_computed_bilinear():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])[None, None]
    flow = torch.full((1, 2, 2, 2), 0.5)
    # pixel (0, 0) samples (0.5, 0.5): the mean of the four = 1.5; the others leave the image
    # partly: pixel (1, 0) samples x=1.5, y=0.5 -> 0.25 * (1 + 3) + zeros = 1.0
    out = warp(x, flow)
    assert out[0, 0, 0, 0].item() == pytest.approx(1.5)
    assert out[0, 0, 0, 1].item() == pytest.approx(1.0)
    assert out[0, 0, 1, 0].item() == pytest.approx(0.25 * (2 + 3))
    assert out[0, 0, 1, 1].item() == pytest.approx(0.25 * 3)


def test_warp_matches_brute_force_bilinear():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(2, 5, 6)).astype(np.float32)
    flow = rng.uniform(-2.5, 2.5, size=(2, 5, 6)).astype(np.float32)
    out = warp(torch.from_numpy(img)[None], torch.from_numpy(flow)[None])[0].numpy()
    for r in range(5):
        for c in range(6):
            ref = ref_bilinear(img, c + flow[0, r, c], r + flow[1, r, c])
            np.testing.assert_allclose(out[:, r, c], ref, atol=1e-5)


def test_warp_nearest_and_degenerate_sizes():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 0.6  # nearest: column c reads round(c + 0.6) = c + 1
    out = warp(x, flow, mode="nearest")
    assert torch.equal(out[..., :-1], x[..., 1:])
    one = warp(torch.ones(1, 1, 1, 1), torch.zeros(1, 2, 1, 1))  # W == H == 1: no division by zero
    assert torch.isfinite(one).all() and one.item() == 1.0
    col = warp(torch.arange(3.0).view(1, 1, 3, 1), torch.zeros(1, 2, 3, 1))
    assert torch.equal(col, torch.arange(3.0).view(1, 1, 3, 1))
    with pytest.raises(SPGNetError, match="does not match"):
        warp(x, torch.zeros(1, 2, 3, 5))


def test_warp_half_precision_samples_at_float32_positions():
    # bfloat16 holds integers exactly only up to 256 and has 3 significant digits: the
    # positions must not be rounded to it, only the sampled values
    x = torch.randn(1, 2, 8, 300).bfloat16()
    flow = torch.full((1, 2, 8, 300), 0.37)
    flow[:, 1] = 0.0
    out = warp(x, flow)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, warp(x.float(), flow).bfloat16())
