"""Pose masks for Mask-SSIM / Mask-LPIPS (Market-1501 protocol).

Matches ``produce_ma_mask(kp_array, img_size, point_radius=4)`` of Deformable-GAN
(AliaksandrSiarohin/pose-gan ``pose_utils.py``), copied unchanged into PATN
(``tool/pose_utils.py``) and GFLA (``metrics.py``), which every Market paper uses:

1. for each of the 23 limbs in ``MASK_LIMBS`` with both joints present, the filled
   rectangle with the limb as its centre line and half-width ``point_radius``
   (``skimage.draw.polygon`` of the 4 corners ``a ± n, b ∓ n``);
2. for each present joint, the disk of radius ``point_radius``
   (``skimage.draw.circle``/``disk``: pixels strictly inside, ``d < r``);
3. a morphological closing with a 5×5 square (``dilation`` then ``erosion``,
   ``skimage.morphology``; out-of-image pixels are ignored, which is what skimage's
   ``mode='reflect'`` amounts to for a 5×5 window).

Beyond the 12 body limbs the list holds the head links, neck-ears, hip-hip,
hip-shoulder (torso sides) and ear-ear. The masks are drawn from the **target**
keypoints. Rectangles are closed (pixels on the boundary count), as current
scikit-image's ``polygon`` does; the skimage of 2017-2019 used a half-open crossing
test that could drop pixels lying exactly on a rectangle edge, a difference the
closing mostly absorbs. A zero-length limb (both joints on the same pixel) has no
rectangle (the original code would fail on it); its disks remain.

Shapes: keypoints ``(B, 18, 2)`` (x, y) pixels, missing = any negative coordinate;
mask ``(B, H, W)`` bool.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spgnet.pose import check_keypoints

# Deformable-GAN's limb list (1-based there), here 0-based in OpenPose COCO-18 order.
MASK_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (1, 16), (1, 17), (8, 11), (11, 5),
    (8, 2), (16, 17),
)


def pose_masks(
    keypoints: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    point_radius: float = 4.0,
    closing_size: int = 5,
) -> torch.Tensor:
    """Binary person masks ``(B, H, W)`` from keypoints ``(B, 18, 2)`` (x, y)."""
    kp = torch.as_tensor(keypoints).to(torch.float64)
    check_keypoints(kp, "pose_masks: keypoints", ndims=(2, 3))
    if kp.dim() == 2:
        kp = kp.unsqueeze(0)
    present = (kp >= 0).all(dim=-1)  # (B, 18)
    ys = torch.arange(height, dtype=torch.float64, device=kp.device).view(1, height, 1)
    xs = torch.arange(width, dtype=torch.float64, device=kp.device).view(1, 1, width)
    r = float(point_radius)
    mask = torch.zeros(kp.shape[0], height, width, dtype=torch.bool, device=kp.device)

    # Loops run over the fixed skeleton (18 joints, 23 limbs); each step is vectorised
    # over the batch and all pixels.
    for j in range(18):
        dy = ys - kp[:, j, 1].view(-1, 1, 1)
        dx = xs - kp[:, j, 0].view(-1, 1, 1)
        disk = (dy / r) ** 2 + (dx / r) ** 2 < 1.0
        mask |= disk & present[:, j].view(-1, 1, 1)

    for f, t in MASK_LIMBS:
        a, b = kp[:, f], kp[:, t]  # (B, 2)
        d = a - b
        length2 = (d * d).sum(dim=-1)
        valid = present[:, f] & present[:, t] & (length2 > 0)
        px = xs - b[:, 0].view(-1, 1, 1)
        py = ys - b[:, 1].view(-1, 1, 1)
        dxl, dyl = d[:, 0].view(-1, 1, 1), d[:, 1].view(-1, 1, 1)
        along = px * dxl + py * dyl  # projection on the limb, times |d|
        across = (px * dyl - py * dxl).abs()  # distance from the centre line, times |d|
        rect = (along >= 0) & (along <= length2.view(-1, 1, 1)) & (across <= r * length2.sqrt().view(-1, 1, 1))
        mask |= rect & valid.view(-1, 1, 1)

    if closing_size > 1:
        pad = closing_size // 2
        m = mask.unsqueeze(1).float()
        m = F.max_pool2d(m, closing_size, stride=1, padding=pad)  # dilation
        m = -F.max_pool2d(-m, closing_size, stride=1, padding=pad)  # erosion (padding is -inf: ignored)
        mask = m.squeeze(1) > 0.5
    return mask
