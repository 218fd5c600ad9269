"""Semantic parsing labels: the CIHP/LIP 20 classes, one-hot, the coarse 8-class merge,
and colourised export.

Label maps are ``(H, W)`` / ``(B, H, W)`` integer arrays or tensors; one-hot maps are
``(B, 20, H, W)`` float tensors.
"""

from __future__ import annotations

import os

import numpy as np
import torch

NUM_CLASSES = 20

CIHP_LABELS: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat",
    "socks", "pants", "jumpsuits", "scarf", "skirt", "face", "left-arm", "right-arm",
    "left-leg", "right-leg", "left-shoe", "right-shoe",
)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CIHP_LABELS)}

# The LIP/CIHP visualisation palette (the colours the human-parsing repos use).
CIHP_PALETTE = np.array(
    [
        [0, 0, 0], [128, 0, 0], [255, 0, 0], [0, 85, 0], [170, 0, 51], [255, 85, 0],
        [0, 0, 85], [0, 119, 221], [85, 85, 0], [0, 85, 85], [85, 51, 0], [52, 86, 128],
        [0, 128, 0], [0, 0, 255], [51, 170, 221], [0, 255, 255], [85, 255, 170],
        [170, 255, 85], [255, 255, 0], [255, 170, 0],
    ],
    dtype=np.uint8,
)

# Coarse 8-class merge as used by ADGAN / PISE / CASD (names of the 8 classes below).
# Exact table, CIHP index -> coarse index:
#   0 background            <- background
#   1 pants                 <- pants, skirt, jumpsuits(lower half is not separable: jumpsuits->upper)
#   2 hair                  <- hat, hair
#   3 gloves/arms-skin      <- glove, left-arm, right-arm
#   4 face                  <- face, sunglasses
#   5 upper clothes         <- upper-clothes, dress, coat, jumpsuits, scarf
#   6 legs                  <- left-leg, right-leg, socks
#   7 shoes                 <- left-shoe, right-shoe
COARSE8_NAMES: tuple[str, ...] = (
    "background", "pants", "hair", "arms", "face", "upper-clothes", "legs", "shoes",
)
CIHP_TO_COARSE8 = np.array(
    [0, 2, 2, 3, 4, 5, 5, 5, 6, 1, 5, 5, 1, 4, 3, 3, 6, 6, 7, 7], dtype=np.int64
)
# Labels that swap when an image is mirrored horizontally.
LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))


DEBUG_CHECKS_ENV = "SPGNET_DEBUG_CHECKS"


def debug_checks() -> bool:
    """Whether the checks that cost a host sync on tensors run (``SPGNET_DEBUG_CHECKS=1``)."""
    return os.environ.get(DEBUG_CHECKS_ENV, "").strip() not in ("", "0")


def one_hot(labels: torch.Tensor | np.ndarray, num_classes: int = NUM_CLASSES, *,
            check: bool | None = None) -> torch.Tensor:
    """``(H, W)`` or ``(B, H, W)`` integer labels -> ``(B, C, H, W)`` float one-hot.

    ``check``: a ValueError unless every label lies in ``[0, num_classes)``. Reading the
    range is a host sync on a device tensor, so by default (None) only NumPy labels are
    checked, and tensors when :func:`debug_checks` is on: tensors come from the loader,
    which checks every label map it reads (:meth:`spgnet.data.dataset.PairDataset.load_labels`),
    or from an argmax. An out-of-range tensor label unchecked is still an error: an
    index error of ``scatter_`` on the CPU, a device-side assert on CUDA."""
    if check is None:
        check = not isinstance(labels, torch.Tensor) or debug_checks()
    t = torch.as_tensor(labels)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"one_hot: expected (H, W) or (B, H, W) labels, got shape {tuple(t.shape)}")
    t = t.long()
    if check and t.numel():
        low, high = torch.stack(torch.aminmax(t)).tolist()  # one host read
        if low < 0 or high >= num_classes:
            raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got [{low}, {high}]")
    out = torch.zeros(t.shape[0], num_classes, *t.shape[1:], dtype=torch.float32, device=t.device)
    return out.scatter_(1, t.unsqueeze(1), 1.0)


def to_coarse8(labels: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Map CIHP labels to the coarse 8-class merge (same type and shape as the input)."""
    if isinstance(labels, torch.Tensor):
        return torch.as_tensor(CIHP_TO_COARSE8, device=labels.device)[labels.long()]
    return CIHP_TO_COARSE8[np.asarray(labels, dtype=np.int64)]


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """Swap left/right classes (for a horizontally mirrored image; the pixels are not moved)."""
    table = np.arange(NUM_CLASSES)
    for a, b in LEFT_RIGHT_PAIRS:
        table[a], table[b] = b, a
    return table[labels]


def colorize(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(H, W)`` labels -> ``(H, W, 3)`` uint8 RGB with the CIHP palette."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return CIHP_PALETTE[np.clip(arr.astype(np.int64), 0, NUM_CLASSES - 1)]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """``(C, C)`` int64 counts, rows = target class, columns = predicted class."""
    pred = torch.as_tensor(pred).reshape(-1).long()
    target = torch.as_tensor(target).reshape(-1).long().to(pred.device)
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: {pred.numel()} predicted vs {target.numel()} target labels")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"confusion_matrix: {name} labels must lie in [0, {num_classes}), got [{int(t.min())}, {int(t.max())}]")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def miou_from_confusion(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in pred or target of a confusion matrix."""
    conf = torch.as_tensor(conf)
    inter = conf.diag().double()
    union = conf.sum(0).double() + conf.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


def miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> float:
    """Mean intersection-over-union over the classes present in pred or target.

    Accumulates one confusion matrix over the whole batch (the standard dataset-level
    mIoU when called on all pairs at once; ``spgnet.evaluation.metrics.parsing_miou`` accumulates
    it batch by batch).
    """
    return miou_from_confusion(confusion_matrix(pred, target, num_classes))
