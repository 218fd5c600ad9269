"""PCKh on hand-made keypoints, and against a transliteration of PATN's
tool/calPCKH_fashion.py loop (y/x lists, -1 missing)."""

import numpy as np
import pytest
import torch

from spgnet.evaluation.metrics import create_metric, pckh


def missing_kp() -> np.ndarray:
    return np.full((18, 2), -1.0)


def hand_made_set():
    gt, pred = [missing_kp() for _ in range(3)], [missing_kp() for _ in range(3)]
    # Image A: head joints nose, neck, eyes -> box w = 14 - 8 = 6, h = 20 - 8 = 12 (limits 3, 6)
    gt[0][[0, 1, 14, 15, 2, 3]] = [(10, 10), (14, 20), (8, 8), (12, 8), (20, 30), (25, 40)]
    pred[0][0] = (12, 15)  # |dx| 2 < 3, |dy| 5 < 6: correct
    pred[0][1] = (17, 20)  # |dx| 3 is not < 3: wrong (strict)
    pred[0][14] = (8, 8)  # exact: correct
    # l-eye (15) not detected: wrong
    pred[0][2] = (22, 35.9)  # correct
    pred[0][3] = (25, 47)  # |dy| 7: wrong
    pred[0][4] = (30, 50)  # GT wrist missing: not counted
    # Image B: a single head joint -> skipped entirely
    gt[1][[0, 2, 5]] = [(5, 5), (10, 20), (20, 20)]
    pred[1][[0, 2, 5]] = [(5, 5), (10, 20), (20, 20)]
    # Image C: nose and neck on one vertical line -> w = 0, nothing can be within the box
    gt[2][[0, 1, 8]] = [(5, 5), (5, 15), (10, 40)]
    pred[2][[0, 1, 8]] = [(5, 5), (5, 15), (10, 40)]
    return np.stack(pred), np.stack(gt)


def test_hand_made_answers():
    pred, gt = hand_made_set()
    result = pckh(pred, gt)
    assert result["correct"] == 3
    assert result["total"] == 6 + 3
    assert result["images"] == 2 and result["skipped"] == 1
    assert result["pckh"] == pytest.approx(3 / 9)


def patn_pckh(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> tuple[int, int]:
    """calPCKH_fashion.py's loop, on its own (y-list, x-list) representation."""
    n_all = n_correct = 0
    for p, t in zip(pred, gt):
        px, py, tx, ty = list(p[:, 0]), list(p[:, 1]), list(t[:, 0]), list(t[:, 1])
        head = [(tx[c], ty[c]) for c in (0, 1, 14, 15, 16, 17) if tx[c] != -1 and ty[c] != -1]
        if len(head) < 2:
            continue
        w = max(h[0] for h in head) - min(h[0] for h in head)
        h = max(h[1] for h in head) - min(h[1] for h in head)
        n_all += sum(1 for v in ty if v != -1)
        for i in range(18):
            if -1 in (px[i], py[i], tx[i], ty[i]):
                continue
            if abs(px[i] - tx[i]) < w * alpha and abs(py[i] - ty[i]) < h * alpha:
                n_correct += 1
    return n_correct, n_all


def test_matches_patn_loop_on_random_detections():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 176, (40, 18, 2)).astype(float)
    gt[rng.random((40, 18)) < 0.3] = -1
    pred = np.clip(gt + rng.integers(-12, 13, gt.shape), 0, None)  # detections lie in the image
    pred[rng.random((40, 18)) < 0.15] = -1
    pred[gt[..., 0] < 0] = np.where(rng.random(((gt[..., 0] < 0).sum(), 1)) < 0.5, -1, 7)
    correct, total = patn_pckh(pred, gt)
    result = pckh(torch.from_numpy(pred), torch.from_numpy(gt))
    assert (result["correct"], result["total"]) == (correct, total)
    assert total > 0 and 0 < correct < total


def test_registered_metric_pools_over_batches():
    pred, gt = hand_made_set()
    metric = create_metric("pckh")
    metric.update({"pred_kp": torch.from_numpy(pred[:1]), "target_kp": torch.from_numpy(gt[:1])})
    metric.update({"pred_kp": torch.from_numpy(pred[1:]), "target_kp": torch.from_numpy(gt[1:])})
    out = metric.compute()
    assert out["pckh"] == pytest.approx(3 / 9) and out["skipped"] == 1
