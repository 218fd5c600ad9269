"""Intr-Flow ``.corr`` files: dense target->source correspondence plus visibility.

Layout (little-endian): int32 width, int32 height, float32 ``H*W*2`` absolute source
coordinates ``(x, y)`` for every target pixel (row-major), then uint8 ``H*W``
visibility (0 visible, 1 invisible in the source, 2 background).

In memory we use the backward *displacement* (docs/design.md §2): ``flow (2, H, W)`` with
``source = target_pixel + flow``; :func:`read_corr` / :func:`write_corr` convert.
"""

from __future__ import annotations

import os

import numpy as np

from spgnet import SPGNetError
from spgnet.utils.io import atomic_write_bytes

_HEADER = np.dtype("<i4")


def encode_corr(flow: np.ndarray, vis: np.ndarray) -> bytes:
    """``flow (2, H, W)`` float displacement and ``vis (H, W)`` {0,1,2} -> .corr bytes."""
    flow = np.asarray(flow, dtype=np.float32)
    vis = np.asarray(vis)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be (2, H, W), got {flow.shape}")
    h, w = flow.shape[1:]
    if vis.shape != (h, w):
        raise ValueError(f"vis must be ({h}, {w}), got {vis.shape}")
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.stack([xs + flow[0], ys + flow[1]], axis=-1).astype("<f4")  # (H, W, 2)
    return (
        np.array([w, h], dtype=_HEADER).tobytes()
        + coords.tobytes()
        + vis.astype(np.uint8).tobytes()
    )


def write_corr(path: str | os.PathLike, flow: np.ndarray, vis: np.ndarray) -> None:
    atomic_write_bytes(path, encode_corr(flow, vis))


def read_corr(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a .corr file -> ``(flow (2, H, W) float32 displacement, vis (H, W) uint8)``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SPGNetError(f"{path}: flow file not found") from None
    if len(data) < 8:
        raise SPGNetError(f"{path}: truncated .corr file ({len(data)} bytes, header needs 8)")
    w, h = (int(v) for v in np.frombuffer(data[:8], dtype=_HEADER))
    if w <= 0 or h <= 0 or w > 1 << 15 or h > 1 << 15:
        raise SPGNetError(f"{path}: bad .corr header (width={w}, height={h})")
    expected = 8 + h * w * 8 + h * w
    if len(data) != expected:
        raise SPGNetError(
            f"{path}: .corr file has {len(data)} bytes, expected {expected} for {w}x{h} (truncated or wrong format)"
        )
    coords = np.frombuffer(data[8 : 8 + h * w * 8], dtype="<f4").reshape(h, w, 2)
    vis = np.frombuffer(data[8 + h * w * 8 :], dtype=np.uint8).reshape(h, w).copy()
    if not np.isfinite(coords).all():
        raise SPGNetError(f"{path}: .corr file contains non-finite coordinates")
    if vis.max(initial=0) > 2:
        raise SPGNetError(f"{path}: .corr visibility values must be 0, 1 or 2, found {int(vis.max())}")
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([coords[..., 0] - xs, coords[..., 1] - ys]).astype(np.float32)
    return flow, vis
