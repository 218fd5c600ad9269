"""OpenPose COCO-18 keypoints: names, limbs, mirror table, and the geometry every
consumer shares (docs/design.md §2).

Keypoints are ``(..., 18, 2)`` arrays or tensors of **(x, y)** float pixel coordinates
(pixel centres at integers); a joint is *missing* when a coordinate is negative (files
use -1) or not finite. Keypoints off the image are still valid.
"""

from __future__ import annotations

import numpy as np
import torch

from spgnet import SPGNetError

NUM_KEYPOINTS = 18

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r-shoulder", "r-elbow", "r-wrist", "l-shoulder", "l-elbow", "l-wrist",
    "r-hip", "r-knee", "r-ankle", "l-hip", "l-knee", "l-ankle", "r-eye", "l-eye", "r-ear", "l-ear",
)

# The 12 body limbs of the distance maps (docs/design.md §3), in channel order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
)

# The 17 edges OpenPose (COCO-18) and the pose-transfer repos draw: the 12 limbs plus the face.
SKELETON_EDGES: tuple[tuple[int, int], ...] = LIMBS + ((1, 0), (0, 14), (14, 16), (0, 15), (15, 17))

# Horizontal mirror: joint j of the mirrored person is joint FLIP_INDEX[j] of the original.
FLIP_INDEX: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# BODY_25 -> COCO-18 (BODY_25 adds mid-hip at 8 and six foot points at 19-24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def is_missing(kp: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(..., 18, 2)`` -> ``(..., 18)`` bool: a coordinate is negative or not finite."""
    if isinstance(kp, torch.Tensor):
        return ~(torch.isfinite(kp) & (kp >= 0)).all(-1)
    kp = np.asarray(kp)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(kp) & (kp >= 0)).all(-1)


def check_keypoints(kp, what: str = "keypoints", ndims: tuple[int, ...] | None = None,
                    batch: int | None = None) -> None:
    """Raise SPGNetError unless ``kp`` (array or tensor) has shape ``(..., 18, 2)``: the one
    keypoint-array check. ``ndims``: the allowed numbers of dimensions (``(2,)`` one person
    ``(18, 2)``, ``(3,)`` a batch ``(B, 18, 2)``); ``batch``: the required B."""
    shape = tuple(kp.shape)
    ok = len(shape) >= 2 and shape[-2:] == (NUM_KEYPOINTS, 2)
    ok = ok and (ndims is None or len(shape) in ndims) and (batch is None or shape[0] == batch)
    if not ok:
        lead = {2: "", 3: f"{'B' if batch is None else batch}, "}
        forms = " or ".join(f"({lead.get(n, '..., ')}{NUM_KEYPOINTS}, 2)" for n in (ndims or (0,)))
        raise SPGNetError(f"{what} must have shape {forms} (x, y), got {shape}")


def transform_keypoints(
    kp: np.ndarray | torch.Tensor,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    offset_xy: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray | torch.Tensor:
    """Resize/shift keypoints ``(..., 18, 2)``: ``x' = (x + 0.5) * sx - 0.5 + ox`` (same for y).

    The ``+0.5 / -0.5`` maps pixel centres to pixel centres, as image resizing does
    (``align_corners=False``). Missing joints stay at -1. A valid joint that lands
    within half a pixel left of / above the image is clamped to 0 (it is still on the
    first pixel; a negative value would read as missing); one further out cannot be
    represented and becomes missing (-1). Returns float32 of the input's kind.
    """
    if not isinstance(kp, torch.Tensor):
        kp = np.asarray(kp, dtype=np.float32)
    check_keypoints(kp)
    missing = is_missing(kp)
    if isinstance(kp, torch.Tensor):
        kp = kp.float()
        scale = torch.tensor(scale_xy, dtype=torch.float32, device=kp.device)
        offset = torch.tensor(offset_xy, dtype=torch.float32, device=kp.device)
        out = (kp + 0.5) * scale - 0.5 + offset
        out = torch.where((out < 0) & (out >= -0.5), torch.zeros_like(out), out)
        gone = missing | (out < 0).any(-1)
        return torch.where(gone[..., None], torch.full_like(out, -1.0), out)
    kp = np.asarray(kp, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        out = (kp + np.float32(0.5)) * np.asarray(scale_xy, np.float32) - np.float32(0.5) + np.asarray(offset_xy, np.float32)
        out = np.where((out < 0) & (out >= -0.5), np.float32(0), out)
        gone = missing | (out < 0).any(-1)
    return np.where(gone[..., None], np.float32(-1), out).astype(np.float32)


def flip_keypoints(kp: np.ndarray | torch.Tensor, width: int) -> np.ndarray | torch.Tensor:
    """Keypoints of the horizontally mirrored image of width ``width``.

    ``x -> width - 1 - x`` and left/right joints swap (:data:`FLIP_INDEX`); missing joints
    stay -1. A joint right of the image (x > width - 1) lands at negative x and so
    becomes missing (-1). Returns float32 of the input's kind.
    """
    if not isinstance(kp, torch.Tensor):
        kp = np.asarray(kp, dtype=np.float32)
    check_keypoints(kp)
    if isinstance(kp, torch.Tensor):
        kp = kp.float()[..., list(FLIP_INDEX), :]
        out = torch.stack([(width - 1) - kp[..., 0], kp[..., 1]], -1)
        gone = is_missing(kp) | is_missing(out)
        return torch.where(gone[..., None], torch.full_like(out, -1.0), out)
    kp = np.asarray(kp, dtype=np.float32)[..., list(FLIP_INDEX), :]
    out = np.stack([np.float32(width - 1) - kp[..., 0], kp[..., 1]], -1)
    gone = is_missing(kp) | is_missing(out)
    return np.where(gone[..., None], np.float32(-1), out).astype(np.float32)
