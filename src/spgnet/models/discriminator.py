"""The PatchGAN discriminator of SPGNet (DESIGN §9).

pix2pix's ``NLayerDiscriminator`` (Isola et al., CVPR 2017; the structure PATN and the
SPGNet release use) on ``cat(I_s, image, p_t)``: 4×4 convolutions, padding 1,

=====================  ========  ======  ==================
layer                  channels  stride  after
=====================  ========  ======  ==================
conv 1                 ndf       2       LeakyReLU(0.2), no norm
conv 2 .. n_layers     ×2 (≤8·ndf) 2     norm, LeakyReLU(0.2)
conv n_layers+1        ×2 (≤8·ndf) 1     norm, LeakyReLU(0.2)
conv out               1         1       — (patch logits)
=====================  ========  ======  ==================

With the defaults (ndf 64, n_layers 3: 64-128-256 s2, 512 s1, 1 s1) a 256×176 input
gives 30×20 patch logits, each seeing a 70×70 receptive field. ``norm`` is
``"batch"``, ``"instance"`` or ``"none"``; ``spectral=True`` wraps every convolution
in spectral normalisation (Miyato et al. 2018). Convolutions followed by batch norm
have no bias (pix2pix's ``use_bias``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from spgnet import SPGNetError
from spgnet.models.spatn import init_normal, norm_layer

NORMS = ("batch", "instance", "none")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``forward(*inputs)`` concatenates its ``(B, c_i, H, W)`` inputs on channels
    (``Σ c_i == in_channels``, e.g. ``D(source_image, image, target_pose)`` with
    ``in_channels = 3 + 3 + pose_channels``) and returns ``(B, 1, H', W')`` patch logits.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 spectral: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise SPGNetError(f"unknown discriminator norm '{norm}' (choose from {', '.join(NORMS)})")
        for name, value in (("in_channels", in_channels), ("ndf", ndf), ("n_layers", n_layers)):
            if int(value) < 1:
                raise SPGNetError(f"discriminator {name} must be >= 1, got {value}")
        self.in_channels = in_channels
        bias = norm != "batch"
        wrap = spectral_norm if spectral else (lambda m: m)

        def conv(cin: int, cout: int, stride: int, with_bias: bool) -> nn.Module:
            return wrap(nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=with_bias))

        layers: list[nn.Module] = [conv(in_channels, ndf, 2, True), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [conv(ndf * prev, ndf * mult, stride, bias), norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(conv(ndf * mult, 1, 1, True))
        self.model = nn.Sequential(*layers)
        self.apply(init_normal)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise SPGNetError(f"discriminator: expected (B, {self.in_channels}, H, W) input, "
                              f"got {tuple(x.shape)}")
        return self.model(x)  # (B, 1, H', W') patch logits
