"""Pose maps (paper Eq. 2-3, docs/design.md §3), all ``(B, C, H, W)`` float32 tensors on
the keypoints' device:

* ``keypoint_heatmaps`` (18 ch): ``exp(-((x-x0)^2 + (y-y0)^2) / (2 sigma^2))``, sigma = 6
  (PATN); a missing joint gives a zero channel. Computed as the outer product of two
  1-D Gaussians, which is the same function and avoids an exp per pixel.
* ``keypoint_disks`` (18 ch): 1 where the distance to the joint is <= radius (the
  official SPGNet release's binary pose maps).
* ``skeleton_distance_maps`` (12 ch, paper Eq. 2-3): ``M_m(p) = exp(kappa * d(p, [a_m, b_m]))``
  with ``d`` the exact point-to-segment distance, kappa = -0.1, for the 12
  :data:`~spgnet.pose.keypoints.LIMBS`; a limb with a missing endpoint gives a zero channel.
* ``pose_maps``: heat maps then distance maps (30 ch, paper), or disks (18 ch).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.config import POSE_CHANNELS, POSE_KINDS
from spgnet.pose.keypoints import LIMBS, NUM_KEYPOINTS, check_keypoints, is_missing

_LIMB_A = torch.tensor([a for a, _ in LIMBS])
_LIMB_B = torch.tensor([b for _, b in LIMBS])

# Elements per intermediate buffer of the chunked CPU distance maps: a few of them fit
# in L2, so the ~9 element-wise passes run from cache instead of main memory.
CPU_CHUNK_ELEMENTS = 1 << 18


def _prepare(kp, size) -> tuple[torch.Tensor, int, int]:
    """Keypoints as a ``(B, 18, 2)`` float32 tensor (numpy -> CPU) and the checked ``(H, W)``."""
    if isinstance(kp, torch.Tensor):
        kp = kp.detach().to(torch.float32)
    else:
        kp = torch.from_numpy(np.array(kp, dtype=np.float32))
    check_keypoints(kp, ndims=(2, 3))
    if kp.ndim == 2:
        kp = kp[None]
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SPGNetError(f"pose map size must be (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise SPGNetError(f"pose map size must be positive, got {(h, w)}")
    # canonical -1 for missing joints, so NaN/inf never reach the maps
    kp = torch.where(is_missing(kp)[..., None], torch.full_like(kp, -1.0), kp)
    return kp, h, w


def _grids(kp: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.arange(w, dtype=torch.float32, device=kp.device),  # x of each column
        torch.arange(h, dtype=torch.float32, device=kp.device),  # y of each row
    )


def _heatmaps_into(kp: torch.Tensor, out: torch.Tensor, sigma: float) -> None:
    """Write the ``(B, 18, H, W)`` heat maps of ``kp (B, 18, 2)`` into ``out``."""
    if not sigma > 0:
        raise SPGNetError(f"heat-map sigma must be > 0, got {sigma}")
    h, w = out.shape[-2:]
    xs, ys = _grids(kp, h, w)
    c = -0.5 / (float(sigma) ** 2)
    present = (~is_missing(kp)).float()[..., None]  # (B, 18, 1)
    gx = torch.exp((xs - kp[..., 0:1]).square() * c) * present  # (B, 18, W)
    gy = torch.exp((ys - kp[..., 1:2]).square() * c)  # (B, 18, H)
    # exp(-(dx^2 + dy^2) / 2s^2) = exp(-dy^2 / 2s^2) * exp(-dx^2 / 2s^2)
    torch.mul(gy[..., :, None], gx[..., None, :], out=out)


def keypoint_heatmaps(kp, size: tuple[int, int], sigma: float = 6.0) -> torch.Tensor:
    """Gaussian heat maps ``(B, 18, H, W)`` of keypoints ``(18, 2)`` / ``(B, 18, 2)`` (x, y)."""
    kp, h, w = _prepare(kp, size)
    out = torch.empty(kp.shape[0], NUM_KEYPOINTS, h, w, device=kp.device)
    _heatmaps_into(kp, out, sigma)
    return out


def keypoint_disks(kp, size: tuple[int, int], radius: float = 8.0) -> torch.Tensor:
    """Binary disks ``(B, 18, H, W)``: 1 where the pixel is within ``radius`` of the joint."""
    kp, h, w = _prepare(kp, size)
    if not radius >= 0:
        raise SPGNetError(f"disk radius must be >= 0, got {radius}")
    xs, ys = _grids(kp, h, w)
    missing = is_missing(kp)[..., None]  # (B, 18, 1)
    dx2 = torch.where(missing, torch.full_like(xs, math.inf), (xs - kp[..., 0:1]).square())  # (B, 18, W)
    dy2 = (ys - kp[..., 1:2]).square()  # (B, 18, H)
    out = torch.empty(kp.shape[0], NUM_KEYPOINTS, h, w, device=kp.device)
    torch.add(dy2[..., :, None], dx2[..., None, :], out=out)
    return out.le_(float(radius) ** 2)  # in place: 1.0 inside, 0.0 outside


def _distance_maps_into(kp: torch.Tensor, out: torch.Tensor, kappa: float) -> None:
    """Write the ``(B, 12, H, W)`` skeleton distance maps of ``kp (B, 18, 2)`` into ``out``.

    In the frame of limb ``a -> b`` (unit direction ``e``, normal ``n``, length ``L``) a
    pixel ``p`` has along-coordinate ``s = (p - a).e`` and across-coordinate
    ``q = (p - a).n``; its distance to the segment is ``sqrt(r^2 + q^2)`` with
    ``r = min(s, 0) + max(s - L, 0)`` (how far ``s`` lies outside ``[0, L]``). ``s`` and
    ``q`` are each a column term plus a row term, computed once per limb. A degenerate
    limb (a == b) takes ``e = (1, 0)``, ``L = 0``, which gives the distance to ``a``.
    On CPU the per-pixel passes run over row chunks held in reused buffers, which keeps
    them in cache.
    """
    b_, n_limbs, h, w = out.shape
    xs, ys = _grids(kp, h, w)
    a, b = kp[:, _LIMB_A.to(kp.device)], kp[:, _LIMB_B.to(kp.device)]  # (B, 12, 2)
    d = b - a
    length = d.norm(dim=-1)  # (B, 12)
    unit_x = torch.where(length > 0, d[..., 0] / length.clamp_min(1e-30), torch.ones_like(length))
    unit_y = torch.where(length > 0, d[..., 1] / length.clamp_min(1e-30), torch.zeros_like(length))
    px = (xs - a[..., 0:1])[:, :, None, :]  # (B, 12, 1, W)  x - ax
    py = (ys - a[..., 1:2])[:, :, :, None]  # (B, 12, H, 1)  y - ay
    ux, uy = unit_x[..., None, None], unit_y[..., None, None]  # (B, 12, 1, 1)
    s_col, s_row = px * ux, py * uy  # s = s_col + s_row
    q_col, q_row = px * -uy, py * ux  # q = q_col + q_row
    length = length[..., None, None]
    # exp(bias + kappa * dist) with bias -inf zeroes the limbs with a missing endpoint
    limb_missing = is_missing(a) | is_missing(b)
    bias = torch.where(limb_missing, -math.inf, 0.0).to(torch.float32)[..., None, None]  # (B, 12, 1, 1)

    if kp.device.type == "cpu" and b_ * n_limbs * w > 0:
        rows = max(1, min(h, CPU_CHUNK_ELEMENTS // (b_ * n_limbs * w)))
    else:
        rows = h
    buf_s, buf_c, buf_q = (torch.empty(b_, n_limbs, rows, w, device=kp.device) for _ in range(3))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        s, c, q = buf_s[:, :, : r1 - r0], buf_c[:, :, : r1 - r0], buf_q[:, :, : r1 - r0]
        torch.add(s_col, s_row[:, :, r0:r1], out=s)
        torch.clamp(s, max=0.0, out=c)
        s.sub_(length).clamp_(min=0.0).add_(c)  # r = min(s, 0) + max(s - L, 0)
        torch.add(q_col, q_row[:, :, r0:r1], out=q)
        s.mul_(s).addcmul_(q, q).sqrt_()  # distance to the segment
        o = out[:, :, r0:r1]
        torch.add(bias, s, alpha=float(kappa), out=o)
        o.exp_()


def skeleton_distance_maps(kp, size: tuple[int, int], kappa: float = -0.1) -> torch.Tensor:
    """Skeleton distance maps ``(B, 12, H, W)`` (paper Eq. 2-3), ``exp(kappa * distance)``."""
    kp, h, w = _prepare(kp, size)
    out = torch.empty(kp.shape[0], len(LIMBS), h, w, device=kp.device)
    _distance_maps_into(kp, out, kappa)
    return out


def pose_channels(kind: str) -> int:
    """Number of pose-map channels of ``kind``: 30 (heat maps + distance maps) or 18 (heat maps, disks),
    the config's :data:`spgnet.config.POSE_CHANNELS` (tests check it against the maps)."""
    if kind not in POSE_CHANNELS:
        raise SPGNetError(f"unknown pose map kind '{kind}' (choose from {', '.join(POSE_KINDS)})")
    return POSE_CHANNELS[kind]


def pose_maps(
    kp,
    size: tuple[int, int],
    kind: str = "heatmap+distance",
    sigma: float = 6.0,
    kappa: float = -0.1,
    radius: float = 8.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pose tensor of keypoints ``(18, 2)`` / ``(B, 18, 2)`` (x, y) at ``size = (H, W)``.

    ``kind="heatmap+distance"``: ``(B, 30, H, W)``, the 18 heat maps then the 12
    distance maps (paper). ``kind="heatmap"``: the 18 heat maps alone (the paper's
    stage-1 ablation). ``kind="disk"``: ``(B, 18, H, W)`` binary disks (official
    preset). float32, on the keypoints' device (numpy input -> CPU); not differentiable.
    ``out``: an existing float32 ``(B, 30, H, W)`` tensor to write into (heat+distance
    kind); reusing one skips allocating and page-faulting a fresh ~170 MB tensor per
    batch of 32 at 256x176, which costs about as much as computing the maps on a CPU.
    """
    channels = pose_channels(kind)
    if kind == "disk":
        return keypoint_disks(kp, size, radius)
    if kind == "heatmap":
        return keypoint_heatmaps(kp, size, sigma)
    kp, h, w = _prepare(kp, size)
    shape = (kp.shape[0], channels, h, w)
    if out is None:
        out = torch.empty(shape, device=kp.device)
    elif tuple(out.shape) != shape or out.dtype != torch.float32 or out.device != kp.device:
        raise SPGNetError(f"pose_maps out= must be float32 {shape} on {kp.device}, "
                          f"got {out.dtype} {tuple(out.shape)} on {out.device}")
    _heatmaps_into(kp, out[:, :NUM_KEYPOINTS], sigma)
    _distance_maps_into(kp, out[:, NUM_KEYPOINTS:], kappa)
    return out


def pose_maps_from_config(kp, size: tuple[int, int], cfg) -> torch.Tensor:
    """:func:`pose_maps` with the settings of a :class:`spgnet.config.PoseConfig`."""
    return pose_maps(kp, size, kind=cfg.kind, sigma=cfg.sigma, kappa=cfg.kappa, radius=cfg.disk_radius)
