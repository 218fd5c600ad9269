"""ACE: SEAN region-adaptive normalization (paper Eq. 6-7; SEAN, Zhu et al. CVPR 2020).

For a feature map ``x`` ``(B, C, H, W)``, the target parsing one-hot ``S`` ``(B, K, H, W)``
(K = 20 CIHP classes) and per-class style codes ``z`` ``(B, K, D)``:

* ``n = BN_noaffine(x + s ⊙ ε)`` with ``ε ~ N(0, 1)`` drawn per pixel and shared over
  channels, ``s`` a per-channel scale initialised to 0 (the official ``noise_var``;
  noise is added in eval mode too, as in the official code);
* style branch: ``μ_k = ReLU(W_k z_k + b_k)`` (20 Linear(D, D) layers, stored stacked as
  one ``(K, D, D)`` weight), broadcast over class k's region of S, then k×k convs give
  ``γ_s, β_s``;
* semantic branch (SPADE, hidden 64): ``γ_o, β_o`` from S by conv-ReLU-conv;
* blend ``γ = σ(θ_γ) γ_s + (1 - σ(θ_γ)) γ_o`` (θ scalar, init 0 so 0.5), same for β;
* ``out = n · (1 + γ) + β``.

The broadcast map ``M = Σ_k S_k ⊗ μ_k`` is piecewise constant, so
``conv(M, W) = conv(S, U)`` with per-sample kernels ``U[b, :, k] = W · μ_{b,k}`` (exact,
by linearity; zero padding is preserved). With ``factorized=True`` the style convs run
on the K class masks as one grouped conv (groups = B) instead of on the D-channel map:
about D/K = 6.4x fewer FLOPs in the layers that dominate the generator's cost (DESIGN §12).

The official code loops over batch items and classes in Python; here everything is
tensor ops. :class:`BatchNormNoCondition` is the plain-BN stand-in of the ``baseline``
variants, with the same call signature.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize_parsing(parsing: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a one-hot parsing ``(B, K, h, w)`` to ``size`` (official)."""
    if tuple(parsing.shape[-2:]) == tuple(size):
        return parsing
    return F.interpolate(parsing, size=size, mode="nearest")


class SemanticModulation(nn.Module):
    """SPADE branch: ``(B, K, H, W)`` parsing -> ``γ_o, β_o`` each ``(B, C, H, W)``."""

    def __init__(self, channels: int, label_nc: int, hidden: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, parsing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(parsing)
        return self.gamma(h), self.beta(h)


class ACE(nn.Module):
    """SEAN normalization of ``channels`` channels (see the module docstring).

    ``use_style=False`` keeps only the semantic branch (SPADE variant): no per-class
    Linear layers, no style convs and no blending parameters.
    """

    def __init__(self, channels: int, *, label_nc: int = 20, style_dim: int = 128, kernel_size: int = 5,
                 spade_hidden: int = 64, use_style: bool = True, factorized: bool = True):
        super().__init__()
        self.channels = channels
        self.label_nc = label_nc
        self.use_style = use_style
        self.factorized = factorized
        self.noise_scale = nn.Parameter(torch.zeros(channels))
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.semantic = SemanticModulation(channels, label_nc, spade_hidden, kernel_size)
        if use_style:
            # fc_k of the paper for all K classes: weight (K, out, in), bias (K, out).
            self.style_fc_weight = nn.Parameter(torch.empty(label_nc, style_dim, style_dim))
            self.style_fc_bias = nn.Parameter(torch.empty(label_nc, style_dim))
            self.style_gamma = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.style_beta = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.blend_gamma = nn.Parameter(torch.zeros(1))
            self.blend_beta = nn.Parameter(torch.zeros(1))
            self.reset_style_fc()

    def reset_style_fc(self) -> None:
        """nn.Linear's default initialisation, per class: U(-1/sqrt(D), 1/sqrt(D))."""
        bound = 1.0 / math.sqrt(self.style_fc_weight.shape[-1])
        with torch.no_grad():
            self.style_fc_weight.uniform_(-bound, bound)
            self.style_fc_bias.uniform_(-bound, bound)

    def class_styles(self, codes: torch.Tensor) -> torch.Tensor:
        """``μ_k = ReLU(fc_k(z_k))``: codes ``(B, K, D)`` -> ``(B, K, D)`` (one batched op)."""
        return F.relu(torch.einsum("bki,koi->bko", codes, self.style_fc_weight) + self.style_fc_bias)

    def style_modulation(self, parsing: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Style branch: parsing ``(B, K, H, W)``, codes ``(B, K, D)`` -> ``γ_s, β_s`` ``(B, C, H, W)``."""
        mu = self.class_styles(codes)  # (B, K, D)
        weight = torch.cat((self.style_gamma.weight, self.style_beta.weight), 0)  # (2C, D, k, k)
        bias = torch.cat((self.style_gamma.bias, self.style_beta.bias), 0)
        pad = weight.shape[-1] // 2
        b, k, h, w = parsing.shape
        if self.factorized:
            kernels = torch.einsum("odyx,bkd->bokyx", weight, mu)  # (B, 2C, K, k, k)
            out = F.conv2d(parsing.reshape(1, b * k, h, w), kernels.reshape(-1, k, *weight.shape[-2:]),
                           padding=pad, groups=b)
            out = out.view(b, -1, h, w) + bias.view(1, -1, 1, 1)
        else:
            broadcast = torch.einsum("bkhw,bkd->bdhw", parsing, mu)  # (B, D, H, W)
            out = F.conv2d(broadcast, weight, bias, padding=pad)
        return out.chunk(2, dim=1)

    def forward(self, x: torch.Tensor, parsing: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, C, H, W)``; parsing one-hot ``(B, K, h, w)`` (resized nearest to H×W);
        codes ``(B, K, D)`` (required with the style branch) -> ``(B, C, H, W)``."""
        b, c, h, w = x.shape
        if c != self.channels or parsing.shape[:2] != (b, self.label_nc):
            raise ValueError(f"ACE({self.channels}): got x {tuple(x.shape)}, parsing {tuple(parsing.shape)}")
        parsing = resize_parsing(parsing.to(x.dtype), (h, w))
        noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype) * self.noise_scale.view(1, c, 1, 1)
        normalized = self.norm(x + noise)
        gamma, beta = self.semantic(parsing)
        if self.use_style:
            if codes is None or codes.shape[:2] != (b, self.label_nc):
                raise ValueError(f"ACE({self.channels}): style codes (B, {self.label_nc}, D) required, "
                                 f"got {None if codes is None else tuple(codes.shape)}")
            gamma_s, beta_s = self.style_modulation(parsing, codes.to(x.dtype))
            a_g, a_b = torch.sigmoid(self.blend_gamma), torch.sigmoid(self.blend_beta)
            gamma = a_g * gamma_s + (1 - a_g) * gamma
            beta = a_b * beta_s + (1 - a_b) * beta
        return normalized * (1 + gamma) + beta


class BatchNormNoCondition(nn.BatchNorm2d):
    """Affine BatchNorm with ACE's call signature (the ``baseline`` variants)."""

    def forward(self, x: torch.Tensor, parsing: torch.Tensor | None = None,
                codes: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def make_norm(channels: int, *, conditional: bool, **ace_kwargs) -> nn.Module:
    """ACE (``conditional``) or plain BatchNorm, both called as ``norm(x, parsing, codes)``."""
    return ACE(channels, **ace_kwargs) if conditional else BatchNormNoCondition(channels)


__all__ = ["ACE", "SemanticModulation", "BatchNormNoCondition", "make_norm", "resize_parsing"]
