"""Pose masks against hand-made cases and a scikit-image transliteration of
Deformable-GAN's produce_ma_mask."""

import numpy as np
import torch
from skimage.draw import disk, polygon
from skimage.morphology import dilation, erosion

from spgnet.evaluation.metrics import MASK_LIMBS, pose_masks


def missing_kp() -> np.ndarray:
    return np.full((18, 2), -1.0)


def reference_mask(kp_xy: np.ndarray, size: tuple[int, int], radius: float = 4) -> np.ndarray:
    """produce_ma_mask with skimage, on (y, x) keypoints as the original does."""
    kp = kp_xy[:, ::-1]
    mask = np.zeros(size, dtype=bool)
    for f, t in MASK_LIMBS:
        if (kp[f] < 0).any() or (kp[t] < 0).any():
            continue
        n = kp[f] - kp[t]
        n = radius * np.array([-n[1], n[0]]) / np.linalg.norm(n)
        corners = np.array([kp[f] + n, kp[f] - n, kp[t] - n, kp[t] + n])
        rr, cc = polygon(corners[:, 0], corners[:, 1], shape=size)
        mask[rr, cc] = True
    for joint in kp:
        if (joint < 0).any():
            continue
        rr, cc = disk((joint[0], joint[1]), radius, shape=size)
        mask[rr, cc] = True
    square = np.ones((5, 5), dtype=bool)
    return erosion(dilation(mask, square), square)


def test_single_vertical_limb_hand_made():
    kp = missing_kp()
    kp[1] = (20, 10)  # neck (x, y)
    kp[2] = (20, 30)  # right shoulder, straight below: limb (1, 2)
    got = pose_masks(kp[None], 48, 40, closing_size=1)[0].numpy()
    expected = np.zeros((48, 40), dtype=bool)
    expected[10:31, 16:25] = True  # closed rectangle: |x - 20| <= 4, 10 <= y <= 30
    for cy in (10, 30):  # disks of radius 4, strictly inside: dx² + dy² < 16
        for dy, half in ((1, 3), (2, 3), (3, 2)):
            expected[cy - dy, 20 - half : 20 + half + 1] = True
            expected[cy + dy, 20 - half : 20 + half + 1] = True
    assert (got == expected).all()
    # the 5x5 closing leaves this convex shape unchanged
    assert (pose_masks(kp[None], 48, 40)[0].numpy() == expected).all()


def test_closing_bridges_a_small_gap_and_missing_joints_draw_nothing():
    kp = missing_kp()
    kp[3] = (20, 20)  # right elbow and left knee: no limb joins them
    kp[12] = (30, 20)
    kp[4] = (-1, 35)  # a joint with one negative coordinate is missing
    open_mask = pose_masks(kp[None], 40, 50, closing_size=1)[0].numpy()
    closed = pose_masks(kp[None], 40, 50)[0].numpy()
    assert not open_mask[20, 24:27].any()  # disks span x 17..23 and 27..33
    assert closed[20, 17:34].all()
    assert not closed[35].any() and not closed[:, :10].any()
    assert int(open_mask.sum()) == 2 * 45  # two radius-4 disks: 7 + 2·7 + 2·7 + 2·5 = 45 pixels each


def test_matches_skimage_reference_on_random_poses():
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(6):
        kp = np.stack([rng.uniform(-3, 64, 18), rng.uniform(-3, 128, 18)], -1)
        kp[rng.random(18) < 0.2] = -1
        kp[(kp < 0).any(axis=1)] = -1
        kps.append(kp)
    kps = np.stack(kps)
    got = pose_masks(torch.from_numpy(kps), 128, 64).numpy()
    for kp, mask in zip(kps, got):
        assert (mask == reference_mask(kp, (128, 64))).all()
