"""Stage-2 SPGNet generator (docs/design.md §8; paper §3.2, Fig. 2, Table 6; official
``DualUnetGenerator_SEAN``).

Dual-path U-Net:

* pose encoder on the target pose maps (plus the target parsing for ``baseline-s``),
  appearance encoder on the source image: 1×1 conv + BN, then per scale l two residual
  blocks and ReLU → conv3 stride 2 → BN, widths ``min(nf(l+1), max_nf)``;
* feature deformation (docs/design.md §7) at the first ``num_warp_scales`` scales: after each
  appearance residual block the features are warped by the pooled flow, split by the
  pooled visibility into ``[x_w·(vis==0), x_w·(vis==1)]`` and fused by a residual block;
  the result feeds the skip connection only (the encoder path continues unwarped);
* bottleneck 1×1 conv + BN over cat(pose, appearance);
* decoder per scale: ACE + ×2 PixelShuffle upsampling, then SPGBlocks whose skip is
  cat(pose skip, appearance skip); ACE is driven by the target parsing and the style
  codes that the style encoder pools over the source parsing;
* output ReflectionPad(3) → 7×7 conv to 3 → tanh.

Any H×W works: inputs are padded (centred, ``pad_mode``, default replicate; visibility
padded the same way) to a multiple of ``2**num_scales`` and the output is cropped back.
Style codes are computed on the unpadded source image.

Cost of the ``official-deepfashion`` preset at 256×256 (``torch.utils.flop_counter``,
forward, one image of the benchmark's synthetic person): 131 GFLOP on CPU (default routes
of :mod:`.sean`; data-dependent: it grows with the pixels near class borders), 270 GFLOP
with the dense SPADE γ|β conv (GPU default), 356 GFLOP for a
soft or differentiated parsing and on the ``meta`` device (grouped style conv), 694 GFLOP
with ``factorized_style_conv=False`` (692 in convolutions, the official model's figure;
docs/design.md §12). docs/performance.md has the measured times.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet.ops.warp import warp
from spgnet.models.blocks import (ResidualBlock, SPGBlock, conv_bn, downsample, expand_by_visibility,
                                  pool_flow, pool_visibility, upsample)
from spgnet.models.config import NUM_PARSING_CLASSES, GeneratorConfig
from spgnet.models.sean import SemanticCondition, make_norm
from spgnet.models.style import StyleEncoder


class EncoderScale(nn.Module):
    """Residual blocks (each output is a skip) and a stride-2 downsampling.

    With ``fuse`` (feature deformation at this scale) and a flow, the skip of block i is
    ``fuse[i](x_w, expand_by_visibility(x_w, vis))`` with ``x_w = warp(x, flow)``.
    """

    def __init__(self, channels: int, out_channels: int, num_blocks: int, fuse: bool):
        super().__init__()
        self.res = nn.ModuleList(ResidualBlock(channels) for _ in range(num_blocks))
        self.fuse = nn.ModuleList(ResidualBlock(channels, 2 * channels) for _ in range(num_blocks)) if fuse else None
        self.down = downsample(channels, out_channels)

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None = None,
                vis: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, block in enumerate(self.res):
            x = block(x)
            if flow is None or self.fuse is None:
                skips.append(x)
            else:
                warped = warp(x, flow)
                skips.append(self.fuse[i](warped, expand_by_visibility(warped, vis)))
        return self.down(x), skips


class Encoder(nn.Module):
    """1×1 conv + BN stem and ``num_scales`` :class:`EncoderScale`; the first
    ``fuse_scales`` scales deform their skips when a flow is given."""

    def __init__(self, in_channels: int, cfg: GeneratorConfig, fuse_scales: int = 0):
        super().__init__()
        self.stem = conv_bn(in_channels, cfg.nf, 1)
        self.scales = nn.ModuleList(
            EncoderScale(cfg.width(level), cfg.width(level + 1), cfg.num_res_blocks, fuse=level < fuse_scales)
            for level in range(cfg.num_scales))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None = None, vis: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """-> bottom features ``(B, width(num_scales), H/2^L, W/2^L)`` and skips[level][block]."""
        x = self.stem(x)
        skips = []
        for level, scale in enumerate(self.scales):
            if flow is not None and scale.fuse is not None:
                x, level_skips = scale(x, pool_flow(flow, level), pool_visibility(vis, level))
            else:
                x, level_skips = scale(x)
            skips.append(level_skips)
        return x, skips


class DecoderScale(nn.Module):
    """Upsampling ``in_channels`` -> ``channels`` at twice the resolution, with the scale's
    norm before (official DeepFashion) or after (official Market) it, then SPGBlocks."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, make_norm, norm_before: bool):
        super().__init__()
        self.norm_before = norm_before
        self.norm = make_norm(in_channels if norm_before else channels)
        self.up = upsample(in_channels, channels, batch_norm=norm_before)
        self.blocks = nn.ModuleList(SPGBlock(channels, make_norm) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor, pose_skips: list[torch.Tensor], appearance_skips: list[torch.Tensor],
                condition: SemanticCondition) -> torch.Tensor:
        if self.norm_before:
            x = self.up(self.norm(x, condition))
        else:
            x = self.norm(self.up(x), condition)
        # Mirror of the encoder: the last block's skip is consumed first (official order).
        for i in reversed(range(len(self.blocks))):
            x = self.blocks[i](x, torch.cat((pose_skips[i], appearance_skips[i]), dim=1), condition)
        return x


class SPGNetGenerator(nn.Module):
    """Stage-2 generator; see the module docstring and :class:`GeneratorConfig`.

    ``ace_route`` (None = automatic, or one of ``spgnet.models.sean.ROUTES``) is passed to
    every forward's :class:`~spgnet.models.sean.SemanticCondition`: how ACE computes its
    modulation (the same result on every route; benchmarks compare them).
    """

    ace_route: str | None = None

    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else GeneratorConfig()
        self.style_encoder = StyleEncoder(cfg.style_dim, cfg.style_nf) if cfg.uses_style else None
        self.pose_encoder = Encoder(cfg.pose_encoder_channels, cfg)
        self.appearance_encoder = Encoder(3, cfg, cfg.num_warp_scales if cfg.uses_deformation else 0)
        top = cfg.width(cfg.num_scales)
        self.bottleneck = conv_bn(2 * top, top, 1)
        norm = partial(make_norm, conditional=cfg.uses_semantic_norm, label_nc=NUM_PARSING_CLASSES,
                       style_dim=cfg.style_dim, kernel_size=cfg.ace_kernel, spade_hidden=cfg.spade_hidden,
                       use_style=cfg.uses_style, factorized=cfg.factorized_style_conv,
                       noise_layout=cfg.noise_layout)
        self.decoder = nn.ModuleList(
            DecoderScale(cfg.width(level + 1), cfg.width(level), cfg.num_res_blocks, norm,
                         norm_before=cfg.upsample_norm == "before")
            for level in range(cfg.num_scales))
        self.output = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cfg.nf, 3, 7))

    def forward(self, src_image: torch.Tensor, src_parsing: torch.Tensor, tgt_parsing: torch.Tensor,
                tgt_pose: torch.Tensor, flow: torch.Tensor | None = None,
                vis: torch.Tensor | None = None) -> torch.Tensor:
        """Generate the target image ``(B, 3, H, W)`` in [-1, 1].

        src_image ``(B, 3, H, W)`` in [-1, 1]; src_parsing / tgt_parsing one-hot
        ``(B, 20, H, W)``; tgt_pose ``(B, pose_channels, H, W)``; flow ``(B, 2, H, W)``
        backward displacement in pixels (target pixel p samples the source at p + flow)
        and vis ``(B, 1, H, W)`` in {0 visible, 1 invisible, 2 background}. Without a
        flow (``None``, or a variant without deformation) appearance skips are unwarped.
        """
        cfg = self.cfg
        b, _, h, w = src_image.shape
        self._check("src_image", src_image, (b, 3, h, w))
        self._check("src_parsing", src_parsing, (b, NUM_PARSING_CLASSES, h, w))
        self._check("tgt_parsing", tgt_parsing, (b, NUM_PARSING_CLASSES, h, w))
        self._check("tgt_pose", tgt_pose, (b, cfg.pose_channels, h, w))
        deform = flow is not None and cfg.uses_deformation
        if flow is not None:
            self._check("flow", flow, (b, 2, h, w))
            if vis is None:
                raise ValueError("SPGNetGenerator: vis (B, 1, H, W) is required with a flow")
            self._check("vis", vis, (b, 1, h, w))

        dtype = src_image.dtype
        tgt_parsing = tgt_parsing.to(dtype)
        codes = None
        if self.style_encoder is not None:
            codes = self.style_encoder.codes(src_image, src_parsing.to(dtype))  # (B, 20, style_dim)
        pose_input = tgt_pose.to(dtype)
        if cfg.variant == "baseline-s":
            pose_input = torch.cat((pose_input, tgt_parsing), dim=1)

        pad = self._padding(h, w)
        x_p, pose_skips = self.pose_encoder(self._pad(pose_input, pad))
        if deform:
            # Visibility is rounded to {0, 1, 2} (official), then pooled per scale.
            x_a, appearance_skips = self.appearance_encoder(
                self._pad(src_image, pad), self._pad(flow.to(dtype), pad), self._pad(vis.to(dtype).round(), pad))
        else:
            x_a, appearance_skips = self.appearance_encoder(self._pad(src_image, pad))
        # shared by every ACE: padded target parsing, style codes, per-resolution caches
        condition = SemanticCondition(self._pad(tgt_parsing, pad), codes, route=self.ace_route)

        x = self.bottleneck(torch.cat((x_p, x_a), dim=1))
        for level in reversed(range(cfg.num_scales)):
            x = self.decoder[level](x, pose_skips[level], appearance_skips[level], condition)
        out = torch.tanh(self.output(x))
        return out[:, :, pad[2]:pad[2] + h, pad[0]:pad[0] + w]

    @staticmethod
    def _check(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
        if tuple(t.shape) != shape:
            raise ValueError(f"SPGNetGenerator: {name} must have shape {shape} (B, C, H, W), got {tuple(t.shape)}")

    def _padding(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Centred (left, right, top, bottom) padding up to a multiple of 2**num_scales."""
        m = self.cfg.size_multiple
        ph, pw = -h % m, -w % m
        return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def _pad(self, x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
        if not any(pad):
            return x
        mode = "constant" if self.cfg.pad_mode == "zeros" else self.cfg.pad_mode
        return F.pad(x, pad, mode=mode)


__all__ = ["SPGNetGenerator", "Encoder", "EncoderScale", "DecoderScale"]
