"""The PatchGAN discriminator of SPGNet (docs/design.md §9).

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
from spgnet.models.config import DiscriminatorConfig
from spgnet.models.layers import init_normal, norm_layer


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``forward(*inputs)`` concatenates its ``(B, c_i, H, W)`` inputs on channels
    (``Σ c_i == in_channels``, e.g. ``D(source_image, image, target_pose)`` with
    ``in_channels = 3 + 3 + pose_channels``) and returns ``(B, 1, H', W')`` patch logits.
    """

    def __init__(self, cfg: DiscriminatorConfig | None = None, *, in_channels: int):
        super().__init__()
        cfg = cfg or DiscriminatorConfig()
        if not (isinstance(in_channels, int) and in_channels >= 1):
            raise SPGNetError(f"discriminator in_channels must be a positive integer, got {in_channels!r}")
        self.cfg = cfg
        ndf, n_layers, norm = cfg.ndf, cfg.n_layers, cfg.norm
        self.in_channels = in_channels
        bias = norm != "batch"
        wrap = spectral_norm if cfg.spectral else (lambda m: m)

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
