"""SSIM and Mask-SSIM, batched in torch.

Matches ``skimage.metrics.structural_similarity(im1, im2, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)`` on 8-bit
images (Wang et al. 2004, the setting every pose-transfer paper reports), to ~1e-12
in float64:

* local statistics by a separable Gaussian filter, σ = 1.5, truncated at 3.5σ, i.e.
  radius ``int(3.5·σ + 0.5) = 5`` and an 11-tap window, weights ``exp(-x²/2σ²)``
  normalised to sum 1 (scipy.ndimage's kernel);
* population (co)variances, ``C1 = (0.01·R)²``, ``C2 = (0.03·R)²``;
* the SSIM map is averaged after cropping ``(win - 1) // 2 = 5`` pixels at every border.
  Those cropped-away pixels are the only ones whose window reaches past the image, so
  a *valid* convolution gives exactly skimage's interior values and skimage's
  ``mode='reflect'`` padding never matters;
* per-channel means, then the mean over the 3 channels.

``data_range``: docs/design.md §10 fixes ``R = 255``. The field's evaluation scripts
(Deformable-GAN ``test.py``, PATN ``tool/getMetrics_*.py``, GFLA ``ssim_256``) pass
``data_range = generated.max() - generated.min()`` per image instead; select that with
``data_range="generated"`` (close to 255 for most photos; for masked images the black
background makes the minimum 0, so it is the foreground's maximum).

Mask-SSIM (Market-1501, Ma et al. PG²; PATN ``create_masked_image``): both 8-bit
images are multiplied by the binary pose mask of the *target* keypoints
(``spgnet.evaluation.metrics.masks.pose_masks``), background becomes 0 (black), then plain SSIM.

Shapes: images ``(B, 3, H, W)`` with values on the 0..255 scale (uint8 or float);
results ``(B,)`` float64. ``spgnet.evaluation.metrics.to_uint8_scale`` quantises generator output in
[-1, 1] exactly as saving it to an 8-bit file would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spgnet.evaluation.metrics.quantize import to_uint8_scale
from spgnet.evaluation.metrics.masks import pose_masks
from spgnet.evaluation.metrics.registry import MeanMetric, register_metric

SIGMA = 1.5
TRUNCATE = 3.5
K1 = 0.01
K2 = 0.03


def gaussian_kernel1d(sigma: float = SIGMA, truncate: float = TRUNCATE, dtype=torch.float64, device=None) -> torch.Tensor:
    """scipy.ndimage's Gaussian kernel: radius ``int(truncate·σ + 0.5)``, normalised."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 / (sigma * sigma) * x * x)
    return kernel / kernel.sum()


def _check_pair(generated: torch.Tensor, reference: torch.Tensor, win: int) -> None:
    if generated.shape != reference.shape:
        raise ValueError(f"ssim: image shapes differ: {tuple(generated.shape)} vs {tuple(reference.shape)}")
    if generated.dim() != 4:
        raise ValueError(f"ssim: expected (B, C, H, W) images, got shape {tuple(generated.shape)}")
    if min(generated.shape[-2:]) < win:
        raise ValueError(f"ssim: images must be at least {win}x{win} pixels, got {tuple(generated.shape[-2:])}")


def ssim(
    generated: torch.Tensor,
    reference: torch.Tensor,
    data_range: float | str = 255.0,
    sigma: float = SIGMA,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Per-image SSIM ``(B,)`` of two ``(B, C, H, W)`` batches on the 0..255 scale.

    ``data_range``: a number (docs/design.md §10: 255) or ``"generated"`` for the per-image
    ``generated.max() - generated.min()`` of the PATN / Deformable-GAN scripts.
    ``dtype``: float64 (default) reproduces skimage to ~1e-12; float32 is faster on
    GPUs and within ~1e-5 (worst on bright, nearly flat images: the variances are
    differences of large sums).
    """
    kernel = gaussian_kernel1d(sigma, dtype=dtype, device=generated.device)
    win = kernel.numel()
    _check_pair(generated, reference, win)
    b, c, h, w = generated.shape
    x = generated.to(dtype)
    y = reference.to(dtype)

    if isinstance(data_range, str):
        if data_range != "generated":
            raise ValueError(f"ssim: data_range must be a number or 'generated', got {data_range!r}")
        flat = x.reshape(b, -1)
        rng = (flat.max(dim=1).values - flat.min(dim=1).values).view(b, 1, 1, 1)
    else:
        rng = torch.full((b, 1, 1, 1), float(data_range), dtype=dtype, device=x.device)
    c1 = (K1 * rng) ** 2
    c2 = (K2 * rng) ** 2

    # Five maps filtered at once: x, y, x², y², xy -> (B, 5C, H, W), depthwise separable
    # 'valid' Gaussian filtering (see module docstring for why 'valid' is exact).
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    n = stack.shape[1]
    stack = F.conv2d(stack, kernel.view(1, 1, win, 1).expand(n, 1, win, 1), groups=n)
    stack = F.conv2d(stack, kernel.view(1, 1, 1, win).expand(n, 1, 1, win), groups=n)
    ux, uy, uxx, uyy, uxy = stack.split(c, dim=1)
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s_map.mean(dim=(2, 3), dtype=torch.float64).mean(dim=1)  # (B,)


def masked_ssim(
    generated: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor,
    data_range: float | str = 255.0,
    sigma: float = SIGMA,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Mask-SSIM ``(B,)``: SSIM of ``generated·mask`` and ``reference·mask``.

    ``mask``: ``(B, H, W)`` or ``(B, 1, H, W)`` binary (bool or 0/1), 1 on the person.
    Images on the 0..255 scale, as for ``ssim``.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.shape[0] != generated.shape[0] or mask.shape[-2:] != generated.shape[-2:]:
        raise ValueError(f"masked_ssim: mask shape {tuple(mask.shape)} does not fit images {tuple(generated.shape)}")
    m = mask.to(dtype)
    return ssim(generated.to(dtype) * m, reference.to(dtype) * m, data_range=data_range, sigma=sigma, dtype=dtype)


@register_metric(
    "ssim",
    matches="skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, "
    "data_range=255, channel_axis=-1) on 8-bit images, mean over images",
    inputs=("fake", "real"),
)
class SSIMMetric(MeanMetric):
    def __init__(self, data_range: float | str = 255.0, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.data_range, self.dtype = data_range, dtype
        self.protocol = {"images": "8-bit", "gaussian_sigma": SIGMA, "window": 11, "covariance": "population",
                         "data_range": data_range, "border": "crop 5 px (skimage)"}

    def per_image(self, batch) -> torch.Tensor:
        fake, real = self._inputs(batch)
        return ssim(to_uint8_scale(fake), to_uint8_scale(real), self.data_range, dtype=self.dtype)


@register_metric(
    "mask_ssim",
    matches="PATN tool/getMetrics_market.py masked SSIM: images times the Deformable-GAN produce_ma_mask "
    "of the target pose, then SSIM",
    inputs=("fake", "real", "target_kp"),
)
class MaskSSIMMetric(MeanMetric):
    def __init__(self, data_range: float | str = 255.0, point_radius: float = 4.0, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.data_range, self.point_radius, self.dtype = data_range, point_radius, dtype
        self.protocol = {"images": "8-bit", "gaussian_sigma": SIGMA, "data_range": data_range,
                         "mask": f"produce_ma_mask of target keypoints, radius {point_radius}, 5x5 closing"}

    def per_image(self, batch) -> torch.Tensor:
        fake, real, kp = self._inputs(batch)
        mask = pose_masks(kp.to(fake.device), fake.shape[-2], fake.shape[-1], self.point_radius)
        return masked_ssim(to_uint8_scale(fake), to_uint8_scale(real), mask, self.data_range, dtype=self.dtype)
