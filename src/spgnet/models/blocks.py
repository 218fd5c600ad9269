"""Building blocks of the stage-2 generator (docs/design.md §7-8; paper Table 6; official
``SPG_net_deepfashion.py`` / ``SPG_net_market.py``).

* :class:`ResidualBlock` — encoder block ``x + conv3(ReLU(x))`` (conv + BatchNorm); with
  an extra input ``a`` it is the visibility fusion block of feature deformation:
  ``x + conv3(ReLU(cat(x, conv1(ReLU(a)))))``.
* feature deformation helpers: :func:`pool_flow`, :func:`pool_visibility`,
  :func:`expand_by_visibility`.
* :class:`SPGBlock` — decoder block ``x + SNconv3(ReLU(ACE(cat(x, SNconv1(ReLU(ACE(a)))))))``.
* :func:`downsample` / :func:`upsample` — the stride-2 conv and PixelShuffle steps.

Sub-module names (``conv.0``, ``conv_a.1``, ``down.1`` ...) keep the official Sequential
indices so that :mod:`spgnet.models.official` maps weights by renaming prefixes only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm: the official ``conv`` / ``channel_mapping``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels))


class ResidualBlock(nn.Module):
    """``x + conv_bn3(ReLU(x))``; with ``extra_channels > 0`` the residual branch also sees
    ``a`` ``(B, extra_channels, H, W)`` through ``conv_bn1(ReLU(a))`` (official ResidualBlock)."""

    def __init__(self, channels: int, extra_channels: int = 0):
        super().__init__()
        if extra_channels > 0:
            self.conv_a = conv_bn(extra_channels, channels, 1)
            self.conv = conv_bn(2 * channels, channels, 3)
        else:
            self.conv = conv_bn(channels, channels, 3)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if a is None else torch.cat((x, self.conv_a(F.relu(a))), dim=1)
        return x + self.conv(F.relu(residual))


def downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """ReLU -> conv3 stride 2 -> BatchNorm (indices 1, 2 as official ``*_downsample``)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels))


def upsample(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """ReLU -> conv3 to 4·out -> PixelShuffle(2) [-> BatchNorm] (official ``dec_*_upsample``)."""
    layers = [nn.ReLU(), nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1, bias=False), nn.PixelShuffle(2)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def pool_flow(flow: torch.Tensor, level: int) -> torch.Tensor:
    """Flow ``(B, 2, H, W)`` in pixels -> flow at scale ``level`` ``(B, 2, H/2^l, W/2^l)`` in
    that scale's pixels: average over 2^l × 2^l cells, divided by 2^l (official)."""
    if level == 0:
        return flow
    f = 2 ** level
    return F.avg_pool2d(flow, kernel_size=f) / f


def pool_visibility(vis: torch.Tensor, level: int) -> torch.Tensor:
    """Visibility ``(B, 1, H, W)`` {0 visible, 1 invisible, 2 background} -> min over
    2^l × 2^l cells: a cell is visible if any pixel is, else invisible if any is (official)."""
    if level == 0:
        return vis
    return -F.max_pool2d(-vis, kernel_size=2 ** level)


def expand_by_visibility(x: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)``, vis ``(B, 1, H, W)`` -> ``[x·(vis==0), x·(vis==1)]`` ``(B, 2C, H, W)``;
    background (vis == 2) is zero in both halves."""
    return torch.cat((x * (vis == 0).to(x.dtype), x * (vis == 1).to(x.dtype)), dim=1)


class SPGBlock(nn.Module):
    """Decoder block (paper Table 6; official ``ResidualBlock_SEAN``) on x ``(B, C, H, W)``
    with skip ``a`` ``(B, 2C, H, W)`` = cat(pose skip, appearance skip):

    ``a' = SNconv1(ReLU(norm_a(a)))``, ``out = x + SNconv3(ReLU(norm(cat(x, a'))))``.

    ``norm_a`` / ``norm`` are built by ``make_norm(channels)`` (ACE, or plain BatchNorm for
    the baselines) and called as ``norm(t, condition)`` with the forward pass's
    :class:`~spgnet.models.sean.SemanticCondition` (target parsing + style codes). SN = spectral norm
    (``torch.nn.utils.parametrizations``); the convs have no bias, as in the official model.
    """

    def __init__(self, channels: int, make_norm):
        super().__init__()
        self.norm_a = make_norm(2 * channels)
        self.conv_a = spectral_norm(nn.Conv2d(2 * channels, channels, 1, bias=False))
        self.norm = make_norm(2 * channels)
        self.conv = spectral_norm(nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor, a: torch.Tensor, condition) -> torch.Tensor:
        a = self.conv_a(F.relu(self.norm_a(a, condition)))
        residual = torch.cat((x, a), dim=1)
        return x + self.conv(F.relu(self.norm(residual, condition)))


__all__ = ["ResidualBlock", "SPGBlock", "conv_bn", "downsample", "upsample", "pool_flow",
           "pool_visibility", "expand_by_visibility"]
