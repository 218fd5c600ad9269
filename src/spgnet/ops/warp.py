"""Backward warping with a pixel flow (docs/design.md §2, §7).

Flow is **backward** displacement in pixels, ``(B, 2, H, W)`` as (dx, dy): output pixel
``p`` samples the input at ``p + flow(p)``. ``F.grid_sample`` with ``align_corners=True``
normalisation ``2x/(W-1) - 1``: what the official SPGNet release computed under torch 1.2,
the version its pretrained weights were trained with (torch >= 1.3 changed the default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spgnet import SPGNetError


def _normalise(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinate -> grid_sample coordinate with align_corners=True (size 1 -> 0)."""
    if size == 1:
        return torch.zeros_like(coord)
    return coord * (2.0 / (size - 1)) - 1.0


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
         padding_mode: str = "zeros") -> torch.Tensor:
    """Backward-warp ``x`` ``(B, C, H, W)`` by ``flow`` ``(B, 2, H, W)`` -> ``(B, C, H, W)``.

    Output pixel ``p = (x, y)`` is ``x`` sampled at ``p + flow(p)`` (pixel units, pixel
    centres at integers); ``mode`` and ``padding_mode`` are passed to ``F.grid_sample``.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise SPGNetError(f"warp: expected x (B,C,H,W) and flow (B,2,H,W), got {tuple(x.shape)} "
                          f"and {tuple(flow.shape)}")
    b, _, h, w = x.shape
    if flow.shape[0] != b or flow.shape[2:] != (h, w):
        raise SPGNetError(f"warp: flow {tuple(flow.shape)} does not match x {tuple(x.shape)}")
    # sample positions in at least float32: half precision cannot hold pixel coordinates
    dtype = torch.promote_types(x.dtype, torch.float32)
    flow = flow.to(dtype)
    ys = torch.arange(h, device=x.device, dtype=dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=dtype).view(1, 1, w)
    gx = _normalise(xs + flow[:, 0], w)
    gy = _normalise(ys + flow[:, 1], h)
    grid = torch.stack((gx, gy), dim=-1)  # (B, H, W, 2) as (x, y)
    out = F.grid_sample(x.to(dtype), grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


__all__ = ["warp"]
