"""Drawing skeletons in the OpenPose colour scheme."""

from __future__ import annotations

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.pose.keypoints import SKELETON_EDGES, check_keypoints, is_missing

# OpenPose's 18 drawing colours (RGB): edge i and joint i use colour i.
OPENPOSE_COLORS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    dtype=np.uint8,
)


def _default_widths(h: int, w: int, radius, thickness) -> tuple[int, int]:
    scale = max(h, w) / 256.0
    r = max(1, round(4 * scale)) if radius is None else int(radius)
    t = max(1, round(3 * scale)) if thickness is None else int(thickness)
    return r, t


def draw_skeleton(image: np.ndarray, kp, radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """A copy of ``image (H, W, 3) uint8`` with the OpenPose skeleton of ``kp (18, 2)`` drawn on it.

    Edges (:data:`SKELETON_EDGES`) are lines of ``thickness`` px, joints dots of
    ``radius`` px, in the OpenPose colours; both default to sizes scaled with the image
    (4 and 3 px at 256 px). Missing joints and their edges are skipped.
    """
    from PIL import Image, ImageDraw

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SPGNetError(f"draw_skeleton needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    kp = kp.detach().cpu().numpy() if isinstance(kp, torch.Tensor) else np.asarray(kp, dtype=np.float64)
    check_keypoints(kp, "draw_skeleton draws one person: keypoints", ndims=(2,))
    h, w = image.shape[:2]
    r, t = _default_widths(h, w, radius, thickness)
    present = ~is_missing(kp)
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    for i, (a, b) in enumerate(SKELETON_EDGES):
        if present[a] and present[b]:
            draw.line([tuple(kp[a]), tuple(kp[b])], fill=tuple(int(c) for c in OPENPOSE_COLORS[i]), width=t)
    for j in np.flatnonzero(present):
        x, y = kp[j]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in OPENPOSE_COLORS[j]))
    return np.asarray(canvas)


def render_pose_image(kp, size: tuple[int, int], radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """The OpenPose skeleton of ``kp (18, 2)`` on a black ``(H, W, 3)`` uint8 canvas."""
    h, w = (int(v) for v in size)
    return draw_skeleton(np.zeros((h, w, 3), np.uint8), kp, radius, thickness)
