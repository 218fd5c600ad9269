"""Stage 1 of SPGNet: SPATN, the semantic parsing transfer network (docs/design.md §6).

A PATN-style progressive pose-attention transfer network (Zhu et al., "Progressive
Pose Attention Transfer for Person Image Generation", CVPR 2019; structure of the
official ``PATNetwork``) that predicts the target parsing ``Ŝ_t`` from the source
parsing ``S_s`` and the two poses ``p_s, p_t``:

* two streams with the same stem: ``ReflectionPad(3) -> conv7x7 -> dim``, norm, ReLU,
  then two ``conv3x3 s2`` to ``2·dim`` and ``4·dim``, each with norm + ReLU. The
  "image" stream reads ``S_s`` one-hot (20 ch), or the source image ``I_s`` (3 ch) for
  the SPATN* variant (``input="image"``, used for Market-1501); the pose stream reads
  ``cat(p_s, p_t)`` (``2·pose_channels`` ch);
* ``num_blocks`` pose-attention transfer blocks (:class:`PATBlock`);
* decoder: two ``convT3x3 s2`` (to ``2·dim``, ``dim``) with norm + ReLU, then
  ``ReflectionPad(3) -> conv7x7`` to 20 parsing logits (no activation; trained with
  cross-entropy, paper λ_ce = 10).

As in PATN (its ``use_bias``), convolutions have no bias with batch norm (its shift
absorbs it; PATN leaves the pose branch's last conv without one too) and a bias with
instance norm (affine-free, as PATN uses it); only the output conv always has one.
Weights are initialised N(0, 0.02), batch-norm scales N(1, 0.02) (:func:`init_normal`).

Inputs of any ``H×W``: padded (replicate) to a multiple of 4 at the bottom/right
internally, logits cropped back to ``H×W``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.models.config import SPATNConfig
from spgnet.models.layers import init_normal, norm_layer
from spgnet.parsing import NUM_CLASSES

_DOWNSAMPLING = 2  # two stride-2 convolutions: sizes must be multiples of 4


def _conv_norm_relu(cin: int, cout: int, norm: str, bias: bool, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias), norm_layer(norm, cout), nn.ReLU(True)]


def _stem(in_channels: int, dim: int, norm: str, bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3), nn.Conv2d(in_channels, dim, 7, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
    ]
    for i in range(_DOWNSAMPLING):
        layers += _conv_norm_relu(dim * 2**i, dim * 2 ** (i + 1), norm, bias, stride=2)
    return nn.Sequential(*layers)


class PATBlock(nn.Module):
    """One pose-attention transfer block (PATN Fig. 2).

    ``image_branch = conv3-norm-ReLU-conv3-norm`` on the image code ``x (B, dim, h, w)``;
    ``pose_branch = conv3-norm-ReLU-conv3`` on the pose code (``dim`` channels in the
    first block, ``2·dim`` = cat(previous pose branch, previous output) after it);
    ``att = sigmoid(pose_branch)``, ``out = x + image_branch(x) · att``.
    Returns ``(out (B, dim, h, w), next pose code cat(pose_branch, out) (B, 2·dim, h, w))``.
    All 3×3 convolutions use reflection padding.
    """

    def __init__(self, dim: int, norm: str = "batch", first: bool = False):
        super().__init__()
        bias = norm != "batch"
        pose_in = dim if first else 2 * dim
        self.image_branch = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim),
        )
        self.pose_branch = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(pose_in, pose_in, 3, bias=bias), norm_layer(norm, pose_in), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(pose_in, dim, 3, bias=bias),
        )

    def forward(self, x: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose_out = self.pose_branch(pose)
        out = x + self.image_branch(x) * torch.sigmoid(pose_out)
        return out, torch.cat((pose_out, out), 1)


class SPATN(nn.Module):
    """Stage-1 parsing predictor: ``forward(source, src_pose, tgt_pose) -> (B, 20, H, W)`` logits.

    ``source``: ``(B, 20, H, W)`` one-hot ``S_s`` (``input="parsing"``) or ``(B, 3, H, W)``
    image ``I_s`` in [-1, 1] (``input="image"``, SPATN*); ``src_pose``/``tgt_pose``:
    ``(B, pose_channels, H, W)`` pose maps (30: heat maps + distance maps; 18: disks).
    """

    def __init__(self, cfg: SPATNConfig | None = None, num_classes: int = NUM_CLASSES):
        super().__init__()
        cfg = cfg or SPATNConfig()
        self.cfg = cfg
        dim, norm, pose_channels = cfg.dim, cfg.norm, cfg.pose_channels
        self.input_kind = cfg.input
        self.source_channels = num_classes if cfg.input == "parsing" else 3
        self.pose_channels = pose_channels
        self.num_classes = num_classes
        bias = norm != "batch"
        inner = dim * 2**_DOWNSAMPLING
        self.image_stem = _stem(self.source_channels, dim, norm, bias)
        self.pose_stem = _stem(2 * pose_channels, dim, norm, bias)
        self.blocks = nn.ModuleList(PATBlock(inner, norm, first=(i == 0)) for i in range(cfg.num_blocks))
        up: list[nn.Module] = []
        for i in range(_DOWNSAMPLING):
            cin = inner // 2**i
            up += [
                nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, cin // 2), nn.ReLU(True),
            ]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(dim, num_classes, 7)]
        self.decoder = nn.Sequential(*up)
        self.apply(init_normal)

    def forward(self, source: torch.Tensor, src_pose: torch.Tensor, tgt_pose: torch.Tensor) -> torch.Tensor:
        b, _, h, w = source.shape
        expected = ((self.source_channels, source), (self.pose_channels, src_pose), (self.pose_channels, tgt_pose))
        for name, (channels, t) in zip(("source", "src_pose", "tgt_pose"), expected):
            if t.dim() != 4 or t.shape[0] != b or t.shape[1] != channels or t.shape[2:] != (h, w):
                raise SPGNetError(f"SPATN {name}: expected ({b}, {channels}, {h}, {w}), got {tuple(t.shape)}")
        multiple = 2**_DOWNSAMPLING
        pad = (0, -w % multiple, 0, -h % multiple)  # (left, right, top, bottom)
        if any(pad):
            source, src_pose, tgt_pose = (F.pad(t, pad, mode="replicate") for t in (source, src_pose, tgt_pose))
        x = self.image_stem(source)  # (B, 4·dim, H/4, W/4)
        pose = self.pose_stem(torch.cat((src_pose, tgt_pose), 1))  # (B, 4·dim, H/4, W/4)
        for block in self.blocks:
            x, pose = block(x, pose)
        return self.decoder(x)[:, :, :h, :w]  # (B, 20, H, W) logits


def predict_parsing(logits: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` logits -> ``(B, H, W)`` int64 labels (argmax over classes)."""
    if logits.dim() != 4:
        raise SPGNetError(f"predict_parsing: expected (B, C, H, W) logits, got {tuple(logits.shape)}")
    return logits.argmax(1)
