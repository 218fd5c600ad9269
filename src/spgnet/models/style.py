"""Per-region style codes: SEAN's style encoder ("Zencoder") and region average pooling
(paper §3.2 / Eq. 6; SEAN, Zhu et al. CVPR 2020; official ``Zencoder``).

The encoder maps the source image ``(B, 3, H, W)`` to a ``(B, D, H', W')`` feature map at
about half resolution; :func:`region_average_pool` averages it over each class region
of the source parsing, giving codes ``(B, K, D)`` (zero for classes absent in an image).
"""

from __future__ import annotations


import torch
import torch.nn as nn

from spgnet.models.sean import resize_parsing
from spgnet.utils.torch_utils import no_autocast


def region_average_pool(features: torch.Tensor, parsing: torch.Tensor) -> torch.Tensor:
    """Mean of ``features`` ``(B, D, h, w)`` over each class of ``parsing`` ``(B, K, H, W)``.

    The one-hot parsing is resized (nearest, as the official code) to h×w; returns
    ``(B, K, D)`` float32 (float64 for float64 features), zero for a class with no pixel.
    With a soft parsing it is the parsing-weighted mean.
    """
    if features.dim() != 4 or parsing.dim() != 4 or features.shape[0] != parsing.shape[0]:
        raise ValueError(f"region_average_pool: expected (B, D, h, w) and (B, K, H, W), got "
                         f"{tuple(features.shape)} and {tuple(parsing.shape)}")
    # float32 even under autocast: sums over up to ~10^4 pixels lose precision in fp16.
    dtype = torch.promote_types(features.dtype, torch.float32)
    with no_autocast(features.device):
        masks = resize_parsing(parsing.to(dtype), tuple(features.shape[-2:])).flatten(2)  # (B, K, hw)
        sums = torch.bmm(masks, features.to(dtype).flatten(2).transpose(1, 2))  # (B, K, D)
        area = masks.sum(-1, keepdim=True)  # absent class: sums = 0, area = 0 -> 0
        return sums / area.clamp(min=1e-12)


class StyleEncoder(nn.Module):
    """SEAN Zencoder: image ``(B, 3, H, W)`` -> style features ``(B, D, ~H/2, ~W/2)``.

    ``layers`` keeps the official ``Zencoder.model`` indices: reflect-pad, conv3 to nf,
    InstanceNorm, LeakyReLU(0.2); two stride-2 conv3 (2nf, 4nf); a stride-2 transposed
    conv3 to 8nf; reflect-pad, conv3 to D, tanh. Works at any input size.
    """

    def __init__(self, style_dim: int = 128, nf: int = 32, in_channels: int = 3):
        super().__init__()

        def act():
            return nn.LeakyReLU(0.2)

        self.layers = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(in_channels, nf, 3), nn.InstanceNorm2d(nf), act(),
            nn.Conv2d(nf, 2 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * nf), act(),
            nn.Conv2d(2 * nf, 4 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * nf), act(),
            nn.ConvTranspose2d(4 * nf, 8 * nf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(8 * nf), act(),
            nn.ReflectionPad2d(1), nn.Conv2d(8 * nf, style_dim, 3), nn.Tanh(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)

    def codes(self, image: torch.Tensor, parsing: torch.Tensor) -> torch.Tensor:
        """Style codes ``(B, K, D)`` of ``image`` ``(B, 3, H, W)`` per class of ``parsing`` ``(B, K, H, W)``."""
        return region_average_pool(self(image), parsing)


__all__ = ["StyleEncoder", "region_average_pool"]
