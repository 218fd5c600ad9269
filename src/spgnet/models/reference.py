"""The straightforward SPGNet generator, written the way the official release computes it
(github cszy98/SPGNet ``DualUnetGenerator_SEAN``; SEAN's ``ACE`` and ``Zencoder``).

Used only to compare against :class:`spgnet.models.generator.SPGNetGenerator`: the
equality test (``tests/test_fast_sean.py``) and the benchmarks (``benchmarks/bench_model.py``,
``spgnet bench``). It has the same parameter and buffer names as ``SPGNetGenerator`` for
the same :class:`~spgnet.models.config.GeneratorConfig`, so one state dict loads into both.

What is deliberately *not* optimised, as in the official code:

* ACE builds the ``(B, D, H, W)`` style map with Python loops over batch items and the
  20 classes: ``μ_k = ReLU(fc_k(z_k))`` is written into class k's region by
  ``masked_scatter_`` (docs/design.md §12), then two separate 5×5 convolutions over the D = 128
  channel map give ``γ_s`` and ``β_s``; SPADE's ``γ_o`` and ``β_o`` are two separate convs.
* region average pooling of the style codes loops over batch items and classes with
  ``masked_select``.

Deviation from the official code, on purpose: ACE's noise is drawn as ``randn(B, 1, H, W)``
(one value per pixel, shared over channels, as ours) instead of the official
``randn(B, W, H, 1)`` transposed. Both are the same distribution; drawing it the same way
lets a seeded run of both implementations add identical noise.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from spgnet.ops.warp import warp
from spgnet.models.config import GeneratorConfig

K = 20  # CIHP classes


class ReferenceSPADE(nn.Module):
    """SPADE branch (official ``SPADE`` inside ``ACE``): shared conv + ReLU, then γ and β convs."""

    def __init__(self, channels: int, label_nc: int, hidden: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, segmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actv = self.shared(segmap)
        return self.gamma(actv), self.beta(actv)


class ReferenceACE(nn.Module):
    """SEAN ACE as in the official release (loops over batch × classes, masked scatter)."""

    def __init__(self, channels: int, label_nc: int, style_dim: int, kernel_size: int, spade_hidden: int,
                 use_style: bool):
        super().__init__()
        self.use_style = use_style
        self.style_dim = style_dim
        self.noise_scale = nn.Parameter(torch.zeros(channels))
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.semantic = ReferenceSPADE(channels, label_nc, spade_hidden, kernel_size)
        if use_style:
            # the 20 fc_mu{k} Linear layers, stacked under our parameter names
            bound = 1.0 / style_dim ** 0.5
            self.style_fc_weight = nn.Parameter(torch.empty(label_nc, style_dim, style_dim).uniform_(-bound, bound))
            self.style_fc_bias = nn.Parameter(torch.empty(label_nc, style_dim).uniform_(-bound, bound))
            self.style_gamma = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.style_beta = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.blend_gamma = nn.Parameter(torch.zeros(1))
            self.blend_beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, style_codes: torch.Tensor | None) -> torch.Tensor:
        b, c, h, w = x.shape
        added_noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype) * self.noise_scale.view(1, c, 1, 1)
        normalized = self.norm(x + added_noise)
        segmap = F.interpolate(segmap, size=(h, w), mode="nearest")
        gamma_spade, beta_spade = self.semantic(segmap)
        if not self.use_style:
            return normalized * (1 + gamma_spade) + beta_spade
        middle_avg = torch.zeros(b, self.style_dim, h, w, device=x.device, dtype=x.dtype)
        masks = segmap.bool()
        for i in range(b):
            for j in range(segmap.shape[1]):
                area = int(masks[i, j].sum())
                if area > 0:
                    middle_mu = F.relu(F.linear(style_codes[i][j], self.style_fc_weight[j], self.style_fc_bias[j]))
                    component_mu = middle_mu.reshape(self.style_dim, 1).expand(self.style_dim, area)
                    middle_avg[i].masked_scatter_(masks[i, j], component_mu.to(middle_avg.dtype))
        gamma_avg = self.style_gamma(middle_avg)
        beta_avg = self.style_beta(middle_avg)
        gamma_alpha = torch.sigmoid(self.blend_gamma)
        beta_alpha = torch.sigmoid(self.blend_beta)
        gamma_final = gamma_alpha * gamma_avg + (1 - gamma_alpha) * gamma_spade
        beta_final = beta_alpha * beta_avg + (1 - beta_alpha) * beta_spade
        return normalized * (1 + gamma_final) + beta_final


class ReferenceBatchNorm(nn.BatchNorm2d):
    """Plain BatchNorm for the ``baseline`` variants, called like ACE."""

    def forward(self, x, segmap=None, style_codes=None):
        return super().forward(x)


class ReferenceStyleEncoder(nn.Module):
    """SEAN ``Zencoder`` with the official loop-based region average pooling."""

    def __init__(self, style_dim: int, nf: int):
        super().__init__()
        self.style_dim = style_dim
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.layers = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(3, nf, 3), nn.InstanceNorm2d(nf), act(),
            nn.Conv2d(nf, 2 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * nf), act(),
            nn.Conv2d(2 * nf, 4 * nf, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * nf), act(),
            nn.ConvTranspose2d(4 * nf, 8 * nf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(8 * nf), act(),
            nn.ReflectionPad2d(1), nn.Conv2d(8 * nf, style_dim, 3), nn.Tanh(),
        )

    def forward(self, image: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        codes = self.layers(image)
        segmap = F.interpolate(segmap, size=codes.shape[2:], mode="nearest")
        b_size, f_size, s_size = codes.shape[0], codes.shape[1], segmap.shape[1]
        codes_vector = torch.zeros(b_size, s_size, f_size, dtype=codes.dtype, device=codes.device)
        masks = segmap.bool()
        for i in range(b_size):
            for j in range(s_size):
                area = int(masks[i, j].sum())
                if area > 0:
                    feature = codes[i].masked_select(masks[i, j]).reshape(f_size, area).mean(1)
                    codes_vector[i][j] = feature
        return codes_vector


def conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


class ReferenceResidualBlock(nn.Module):
    def __init__(self, channels: int, extra_channels: int = 0):
        super().__init__()
        if extra_channels:
            self.conv_a = conv_bn(extra_channels, channels, 1)
            self.conv = conv_bn(2 * channels, channels, 3)
        else:
            self.conv = conv_bn(channels, channels, 3)

    def forward(self, x, a=None):
        if a is None:
            return x + self.conv(F.relu(x))
        return x + self.conv(F.relu(torch.cat((x, self.conv_a(F.relu(a))), 1)))


class ReferenceEncoderScale(nn.Module):
    def __init__(self, channels: int, out_channels: int, num_blocks: int, fuse: bool):
        super().__init__()
        self.res = nn.ModuleList(ReferenceResidualBlock(channels) for _ in range(num_blocks))
        self.fuse = (nn.ModuleList(ReferenceResidualBlock(channels, 2 * channels) for _ in range(num_blocks))
                     if fuse else None)
        self.down = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, out_channels, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(out_channels))


class ReferenceEncoder(nn.Module):
    def __init__(self, in_channels: int, cfg: GeneratorConfig, fuse_scales: int):
        super().__init__()
        self.stem = conv_bn(in_channels, cfg.nf, 1)
        self.scales = nn.ModuleList(
            ReferenceEncoderScale(cfg.width(level), cfg.width(level + 1), cfg.num_res_blocks, level < fuse_scales)
            for level in range(cfg.num_scales))

    def forward(self, x, flow=None, vis=None):
        x = self.stem(x)
        skips = []
        for level, scale in enumerate(self.scales):
            level_skips = []
            if flow is not None and scale.fuse is not None:
                f = 2 ** level
                flow_l = flow if level == 0 else F.avg_pool2d(flow, f) / f
                vis_l = vis if level == 0 else -F.max_pool2d(-vis, f)
            for i, block in enumerate(scale.res):
                x = block(x)
                if flow is not None and scale.fuse is not None:
                    warped = warp(x, flow_l)
                    expanded = torch.cat((warped * (vis_l == 0).to(x.dtype), warped * (vis_l == 1).to(x.dtype)), 1)
                    level_skips.append(scale.fuse[i](warped, expanded))
                else:
                    level_skips.append(x)
            skips.append(level_skips)
            x = scale.down(x)
        return x, skips


class ReferenceSPGBlock(nn.Module):
    def __init__(self, channels: int, make_norm):
        super().__init__()
        self.norm_a = make_norm(2 * channels)
        self.conv_a = spectral_norm(nn.Conv2d(2 * channels, channels, 1, bias=False))
        self.norm = make_norm(2 * channels)
        self.conv = spectral_norm(nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False))

    def forward(self, x, a, segmap, codes):
        a = self.conv_a(F.relu(self.norm_a(a, segmap, codes)))
        return x + self.conv(F.relu(self.norm(torch.cat((x, a), 1), segmap, codes)))


class ReferenceDecoderScale(nn.Module):
    def __init__(self, in_channels: int, channels: int, num_blocks: int, make_norm, norm_before: bool):
        super().__init__()
        self.norm_before = norm_before
        self.norm = make_norm(in_channels if norm_before else channels)
        layers = [nn.ReLU(), nn.Conv2d(in_channels, 4 * channels, 3, padding=1, bias=False), nn.PixelShuffle(2)]
        if norm_before:
            layers.append(nn.BatchNorm2d(channels))
        self.up = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(ReferenceSPGBlock(channels, make_norm) for _ in range(num_blocks))


class ReferenceGenerator(nn.Module):
    """``forward(src_image, src_parsing, tgt_parsing, tgt_pose, flow=None, vis=None)`` with the
    shapes and meaning of ``SPGNetGenerator.forward``; same state-dict names."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg

        def make_norm(channels: int) -> nn.Module:
            if not cfg.uses_semantic_norm:
                return ReferenceBatchNorm(channels)
            return ReferenceACE(channels, K, cfg.style_dim, cfg.ace_kernel, cfg.spade_hidden, cfg.uses_style)

        self.style_encoder = ReferenceStyleEncoder(cfg.style_dim, cfg.style_nf) if cfg.uses_style else None
        self.pose_encoder = ReferenceEncoder(cfg.pose_encoder_channels, cfg, 0)
        self.appearance_encoder = ReferenceEncoder(3, cfg, cfg.num_warp_scales if cfg.uses_deformation else 0)
        top = cfg.width(cfg.num_scales)
        self.bottleneck = conv_bn(2 * top, top, 1)
        self.decoder = nn.ModuleList(
            ReferenceDecoderScale(cfg.width(level + 1), cfg.width(level), cfg.num_res_blocks, make_norm,
                                  cfg.upsample_norm == "before")
            for level in range(cfg.num_scales))
        self.output = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cfg.nf, 3, 7))

    def forward(self, src_image, src_parsing, tgt_parsing, tgt_pose, flow=None, vis=None):
        cfg = self.cfg
        b, _, h, w = src_image.shape
        dtype = src_image.dtype
        tgt_parsing = tgt_parsing.to(dtype)
        codes = self.style_encoder(src_image, src_parsing.to(dtype)) if self.style_encoder is not None else None
        pose_input = tgt_pose.to(dtype)
        if cfg.variant == "baseline-s":
            pose_input = torch.cat((pose_input, tgt_parsing), 1)

        m = cfg.size_multiple
        ph, pw = -h % m, -w % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        mode = "constant" if cfg.pad_mode == "zeros" else cfg.pad_mode

        def padded(t):
            return F.pad(t, pad, mode=mode) if any(pad) else t

        x_p, pose_skips = self.pose_encoder(padded(pose_input))
        if flow is not None and cfg.uses_deformation:
            x_a, app_skips = self.appearance_encoder(padded(src_image), padded(flow.to(dtype)),
                                                     padded(vis.to(dtype).round()))
        else:
            x_a, app_skips = self.appearance_encoder(padded(src_image))
        segmap = padded(tgt_parsing)

        x = self.bottleneck(torch.cat((x_p, x_a), 1))
        for level in reversed(range(cfg.num_scales)):
            scale = self.decoder[level]
            if scale.norm_before:
                x = scale.up(scale.norm(x, segmap, codes))
            else:
                x = scale.norm(scale.up(x), segmap, codes)
            for i in reversed(range(len(scale.blocks))):
                skip = torch.cat((pose_skips[level][i], app_skips[level][i]), 1)
                x = scale.blocks[i](x, skip, segmap, codes)
        out = torch.tanh(self.output(x))
        return out[:, :, pad[2]:pad[2] + h, pad[0]:pad[0] + w]


__all__ = ["ReferenceGenerator", "ReferenceACE", "ReferenceStyleEncoder"]
