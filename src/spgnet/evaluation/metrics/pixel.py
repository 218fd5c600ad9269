"""Pixel-space errors: PSNR and L1.

* ``psnr`` matches ``skimage.metrics.peak_signal_noise_ratio(true, test, data_range=255)``
  per image on 8-bit values: ``10·log10(255² / MSE)``, MSE over all pixels and channels
  (GFLA's ``compare_psnr`` on [0, 1] images with data_range 1 is the same number).
  Identical images give +inf, as in skimage.
* ``l1`` is the mean absolute difference on the **[0, 1]** scale (``|a - b| / 255``),
  the convention of Deformable-GAN's ``l1_score``. PATN's ``tool/getMetrics_*.py``
  ``l1_score`` measures on the [-1, 1] scale, i.e. exactly twice this value.

Shapes: images ``(B, C, H, W)`` on the 0..255 scale (uint8 or float; quantise generator
output with ``spgnet.evaluation.metrics.to_uint8_scale``); results ``(B,)`` float64.
"""

from __future__ import annotations

import torch

from spgnet.evaluation.metrics.quantize import to_uint8_scale
from spgnet.evaluation.metrics.registry import MeanMetric, register_metric


def _check_pair(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"{name}: expected two (B, C, H, W) batches of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(generated: torch.Tensor, reference: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Per-image PSNR in dB ``(B,)``."""
    _check_pair(generated, reference, "psnr")
    diff = generated.double() - reference.double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def l1(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error on the [0, 1] scale ``(B,)``."""
    _check_pair(generated, reference, "l1")
    return (generated.double() - reference.double()).abs().flatten(1).mean(dim=1) / 255.0


@register_metric(
    "psnr",
    matches="skimage peak_signal_noise_ratio(data_range=255) on 8-bit images, mean over images",
    inputs=("fake", "real"),
)
class PSNRMetric(MeanMetric):
    def __init__(self) -> None:
        super().__init__()
        self.protocol = {"images": "8-bit", "data_range": 255}

    def per_image(self, batch) -> torch.Tensor:
        fake, real = self._inputs(batch)
        return psnr(to_uint8_scale(fake), to_uint8_scale(real))


@register_metric(
    "l1",
    matches="Deformable-GAN l1_score: mean |a - b| on the [0, 1] scale (PATN's l1_score is 2x this)",
    inputs=("fake", "real"),
    higher_is_better=False,
)
class L1Metric(MeanMetric):
    def __init__(self) -> None:
        super().__init__()
        self.protocol = {"images": "8-bit", "scale": "[0, 1]"}

    def per_image(self, batch) -> torch.Tensor:
        fake, real = self._inputs(batch)
        return l1(to_uint8_scale(fake), to_uint8_scale(real))
