"""Stage-1 parsing mIoU over a dataset (docs/design.md §6, §10).

One confusion matrix over every pixel of every pair (``spgnet.parsing.confusion_matrix``),
accumulated batch by batch; mIoU = mean over the classes present in prediction or GT
of ``TP / (TP + FP + FN)`` (``spgnet.parsing.miou_from_confusion``), i.e. the same
number ``spgnet.parsing.miou`` gives on all pairs at once. Per-class IoU is reported
too (NaN for classes absent from both).

Shapes: label maps ``(B, H, W)`` integers in [0, 20), predicted and GT target parsing.
"""

from __future__ import annotations

import torch

from spgnet.evaluation.metrics.registry import Metric, register_metric
from spgnet.parsing import CIHP_LABELS, NUM_CLASSES, confusion_matrix, miou_from_confusion


class ConfusionAccumulator:
    """Dataset-level confusion matrix ``(C, C)`` (rows GT, columns prediction)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"parsing mIoU: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        self.conf += confusion_matrix(pred, target, self.num_classes).cpu()

    def miou(self) -> float:
        return miou_from_confusion(self.conf)

    def per_class_iou(self) -> dict[str, float]:
        inter = self.conf.diag().double()
        union = self.conf.sum(0).double() + self.conf.sum(1).double() - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))
        names = CIHP_LABELS if self.num_classes == NUM_CLASSES else tuple(str(i) for i in range(self.num_classes))
        return {name: float(v) for name, v in zip(names, iou)}

    def pixel_accuracy(self) -> float:
        total = int(self.conf.sum())
        return float(self.conf.diag().sum()) / total if total else float("nan")


@register_metric(
    "parsing_miou",
    matches="dataset-level confusion matrix mIoU over the CIHP classes present in prediction or GT",
    inputs=("pred_parsing", "target_parsing"),
)
class ParsingMIoUMetric(Metric):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.num_classes = num_classes
        self.protocol = {"classes": num_classes, "accumulation": "one confusion matrix over all pixels",
                         "mean_over": "classes present in prediction or GT"}
        self.reset()

    def update(self, batch) -> None:
        pred, target = self._inputs(batch)
        self.acc.update(pred, target)

    def compute(self) -> dict[str, float]:
        return {"parsing_miou": self.acc.miou(), "pixel_accuracy": self.acc.pixel_accuracy(),
                **{f"iou/{k}": v for k, v in self.acc.per_class_iou().items()}}

    def reset(self) -> None:
        self.acc = ConfusionAccumulator(self.num_classes)
