"""Layers shared by the PATN-style networks (stage 1, the PatchGAN discriminator):
the norm-layer switch and pix2pix's N(0, 0.02) initialisation."""

from __future__ import annotations

import torch.nn as nn

from spgnet import SPGNetError


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"`` -> BatchNorm2d (affine); ``"instance"`` -> InstanceNorm2d (no affine, as
    PATN and pix2pix); ``"none"`` -> Identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise SPGNetError(f"unknown norm '{kind}' (choose from batch, instance, none)")


def init_normal(m: nn.Module) -> None:
    """PATN / pix2pix ``init_weights('normal')`` (use with ``module.apply``): conv weights
    N(0, 0.02), batch-norm scales N(1, 0.02), biases 0. Spectral-normalised convs
    initialise their unnormalised weight."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


__all__ = ["init_normal", "norm_layer"]
