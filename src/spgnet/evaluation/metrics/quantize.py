"""The 8-bit round trip every metric applies to generated images first, so scores on
tensors equal scores on the saved files (rounding and clamping as
``spgnet.utils.io.tensor_to_image``)."""

from __future__ import annotations

import torch


def to_uint8_scale(images: torch.Tensor) -> torch.Tensor:
    """float ``(B, 3, H, W)`` in [-1, 1] -> float on the 0..255 integer grid."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """float ``(B, 3, H, W)`` in [-1, 1] -> the same after an 8-bit round trip, in [-1, 1]."""
    return to_uint8_scale(images).div(127.5).sub(1.0)
