"""PCKh: keypoints detected on generated images against the target annotation.

Matches PATN's ``tool/calPCKH_fashion.py`` / ``calPCKH_market.py``
(tengteng95/Pose-Transfer), the script the pose-transfer papers report, with α = 0.5:

* head box from the **ground-truth** nose, neck, eyes and ears (OpenPose indices
  0, 1, 14, 15, 16, 17); an image with fewer than 2 of them present is skipped
  entirely (neither its joints nor its hits count);
* ``w = max x - min x``, ``h = max y - min y`` over those present head joints (a
  degenerate box, w or h = 0, is kept: nothing can then be within it);
* a joint is correct iff it is present in both GT and prediction and
  ``|px - tx| < α·w`` and ``|py - ty| < α·h`` (strict);
* the denominator counts every joint present in the GT of a non-skipped image, so a
  joint the detector missed on the generated image counts as wrong;
* the score is pooled over the dataset, ``Σ correct / Σ total`` (not a mean of
  per-image ratios).

Missing = any negative coordinate (PATN files use -1 for both).
Shapes: keypoints ``(N, 18, 2)`` (x, y) pixels, numpy or torch.
"""

from __future__ import annotations

import numpy as np
import torch

from spgnet.evaluation.metrics.registry import Metric, register_metric
from spgnet.pose import check_keypoints

HEAD_JOINTS: tuple[int, ...] = (0, 1, 14, 15, 16, 17)


def _as_array(kp, name: str) -> np.ndarray:
    arr = kp.detach().cpu().numpy() if isinstance(kp, torch.Tensor) else np.asarray(kp)
    arr = arr.astype(np.float64)
    check_keypoints(arr, f"pckh: {name}", ndims=(2, 3))
    if arr.ndim == 2:
        arr = arr[None]
    return arr


def pckh_counts(pred_kp, gt_kp, alpha: float = 0.5) -> dict[str, int]:
    """Counts for PCKh: ``correct``, ``total`` (GT-present joints of scored images),
    ``images`` (scored) and ``skipped`` (images with fewer than 2 GT head joints)."""
    pred = _as_array(pred_kp, "pred_kp")
    gt = _as_array(gt_kp, "gt_kp")
    if pred.shape != gt.shape:
        raise ValueError(f"pckh: pred_kp {pred.shape} and gt_kp {gt.shape} differ in shape")
    gt_present = (gt >= 0).all(axis=-1)  # (N, 18)
    pred_present = (pred >= 0).all(axis=-1)

    head = gt[:, HEAD_JOINTS]  # (N, 6, 2)
    head_present = gt_present[:, HEAD_JOINTS]
    scored = head_present.sum(axis=1) >= 2  # (N,)
    lo = np.where(head_present[..., None], head, np.inf).min(axis=1)  # (N, 2)
    hi = np.where(head_present[..., None], head, -np.inf).max(axis=1)
    box = np.where(scored[:, None], hi - lo, 0.0)  # (N, 2) = (w, h)

    within = (np.abs(pred - gt) < alpha * box[:, None, :]).all(axis=-1)  # (N, 18)
    correct = within & gt_present & pred_present & scored[:, None]
    total = gt_present & scored[:, None]
    return {
        "correct": int(correct.sum()),
        "total": int(total.sum()),
        "images": int(scored.sum()),
        "skipped": int((~scored).sum()),
    }


def pckh(pred_kp, gt_kp, alpha: float = 0.5) -> dict[str, float | int]:
    """PCKh of a set of images: the counts of ``pckh_counts`` plus
    ``pckh = correct / total`` (NaN when no joint could be scored)."""
    counts = pckh_counts(pred_kp, gt_kp, alpha)
    score = counts["correct"] / counts["total"] if counts["total"] else float("nan")
    return {"pckh": score, **counts}


@register_metric(
    "pckh",
    matches="PATN tool/calPCKH_fashion.py: GT head box from nose/neck/eyes/ears (>= 2), |dx| < 0.5 w and "
    "|dy| < 0.5 h, pooled over the dataset",
    inputs=("pred_kp", "target_kp"),
)
class PCKhMetric(Metric):
    def __init__(self, alpha: float = 0.5):
        super().__init__()
        self.alpha = alpha
        self.protocol = {"alpha": alpha, "head_joints": "nose, neck, eyes, ears (GT, >= 2 present)",
                         "pooling": "sum correct / sum GT-present joints", "missing_prediction": "wrong"}
        self.reset()

    def update(self, batch) -> None:
        pred, gt = self._inputs(batch)
        for key, value in pckh_counts(pred, gt, self.alpha).items():
            self.counts[key] += value

    def compute(self) -> dict[str, float]:
        total = self.counts["total"]
        return {"pckh": self.counts["correct"] / total if total else float("nan"), **self.counts}

    def reset(self) -> None:
        self.counts = {"correct": 0, "total": 0, "images": 0, "skipped": 0}
