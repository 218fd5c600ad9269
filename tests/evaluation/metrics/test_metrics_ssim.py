"""SSIM / Mask-SSIM / PSNR / L1 against scikit-image and numpy references."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from spgnet.evaluation.metrics import l1, masked_ssim, psnr, ssim

SK_ARGS = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)


def skimage_ssim(a: np.ndarray, b: np.ndarray, data_range=255) -> float:
    return structural_similarity(a, b, data_range=data_range, **SK_ARGS)


def nchw(batch: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(batch).permute(0, 3, 1, 2)


def perturbed(rng, a: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(a.astype(np.int64) + rng.integers(-amount, amount + 1, a.shape), 0, 255).astype(np.uint8)


def structured_images(rng, h: int, w: int) -> np.ndarray:
    """Gradient, checkerboard, blurred noise with a flat block: (3, h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    checker = np.where(((yy // 4) + (xx // 3)) % 2 == 0, 230, 20)[..., None].repeat(3, -1)
    blurred = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), sigma=(2, 2, 0))
    blurred[: h // 3, : w // 3] = 128
    return np.stack([gradient, checker, blurred]).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(11, 11), (37, 23), (64, 48), (13, 101)])
def test_ssim_matches_skimage_random_odd_sizes(size):
    rng = np.random.default_rng(sum(size))
    a = rng.integers(0, 256, (3, *size, 3), dtype=np.uint8)
    b = perturbed(rng, a, 60)
    b[1] = rng.integers(0, 256, size + (3,), dtype=np.uint8)  # an unrelated pair too
    ref = np.array([skimage_ssim(x, y) for x, y in zip(a, b)])
    ours = ssim(nchw(a), nchw(b)).numpy()
    assert np.abs(ours - ref).max() < 1e-4
    ours32 = ssim(nchw(a), nchw(b), dtype=torch.float32).numpy()
    assert np.abs(ours32 - ref).max() < 1e-4


def test_ssim_matches_skimage_structured_and_dynamic_range():
    rng = np.random.default_rng(0)
    a = structured_images(rng, 45, 31)
    b = perturbed(rng, a, 25)
    b[1] = a[1] // 8 + 100  # checkerboard with low contrast: range 102..128
    ref = np.array([skimage_ssim(x, y) for x, y in zip(a, b)])
    assert np.abs(ssim(nchw(a), nchw(b)).numpy() - ref).max() < 1e-4
    # PATN / Deformable-GAN: data_range = generated.max() - generated.min(), per image
    ref_dyn = np.array([skimage_ssim(y, x, data_range=float(y.max()) - float(y.min())) for x, y in zip(a, b)])
    assert abs(ref_dyn[1] - ref[1]) > 1e-3  # the option matters for this pair
    assert np.abs(ssim(nchw(b), nchw(a), data_range="generated").numpy() - ref_dyn).max() < 1e-4


def test_ssim_identical_is_one_and_rejects_bad_input():
    rng = np.random.default_rng(1)
    a = nchw(rng.integers(0, 256, (2, 20, 16, 3), dtype=np.uint8))
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[..., :10], a[..., :10])
    with pytest.raises(ValueError, match="differ"):
        ssim(a, a[:1])


def test_masked_ssim_is_ssim_of_masked_images():
    rng = np.random.default_rng(2)
    a = structured_images(rng, 40, 24)
    b = perturbed(rng, a, 40)
    mask = np.zeros((3, 40, 24), dtype=bool)
    mask[:, 8:30, 5:18] = True
    ref = np.array([skimage_ssim(x * m[..., None], y * m[..., None]) for x, y, m in zip(a, b, mask)])
    ours = masked_ssim(nchw(a), nchw(b), torch.from_numpy(mask)).numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_psnr_and_l1_match_references():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (3, 17, 13, 3), dtype=np.uint8)
    b = perturbed(rng, a, 30)
    ref_psnr = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)]
    np.testing.assert_allclose(psnr(nchw(b), nchw(a)).numpy(), ref_psnr, rtol=1e-12)
    ref_l1 = [np.abs(x.astype(float) - y.astype(float)).mean() / 255 for x, y in zip(a, b)]
    np.testing.assert_allclose(l1(nchw(b), nchw(a)).numpy(), ref_l1, rtol=1e-12)
    # hand-computed: one pixel channel off by 51 in a 1x1x... image of 12 values
    x = torch.zeros(1, 3, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 51
    assert float(l1(x, y)) == pytest.approx(51 / 255 / 12)
    assert float(psnr(x, y)) == pytest.approx(10 * np.log10(255**2 / (51**2 / 12)))
