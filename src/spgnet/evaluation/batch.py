"""In-memory evaluation: :class:`BatchEvaluator` scores batches of tensors with the metric
registry, and :func:`evaluate_batches` runs a pipeline's inference over batches with it.
The same code scores training validation, the demo and (through
:mod:`spgnet.evaluation.directory`) ``spgnet evaluate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.evaluation.metrics import METRICS, MeanMetric, Metric, create_metric
from spgnet.utils.device import resolve_device


class BatchEvaluator:
    """Registry metrics over in-memory batches.

    ``metrics``: names (created with ``create_metric(name, **options.get(name, {}))``)
    or ready :class:`Metric` objects (e.g. an FID metric holding real statistics).
    ``update`` feeds every metric whose inputs were given (others are left alone, so
    ``update(None, None, pred_parsing=p, target_parsing=t)`` scores parsing only);
    ``compute`` returns ``{name: value}`` for the metrics that received data.
    ``psnr_cap``: per-image PSNR is clamped to this many dB before averaging (None:
    identical images give +inf, as skimage).
    """

    def __init__(
        self,
        metrics: Sequence[str | Metric] = ("ssim", "psnr", "l1", "parsing_miou"),
        device: str | torch.device = "cpu",
        options: Mapping[str, Mapping] | None = None,
        psnr_cap: float | None = None,
    ):
        self.device = resolve_device(device)
        self.psnr_cap = psnr_cap
        self.metrics: dict[str, Metric] = {}
        for item in metrics:
            metric = item if isinstance(item, Metric) else create_metric(item, **dict((options or {}).get(item, {})))
            if metric.name in self.metrics:
                raise SPGNetError(f"metric {metric.name!r} listed twice")
            self.metrics[metric.name] = metric
        self._fed: set[str] = set()

    @torch.no_grad()
    def update(
        self,
        fake: torch.Tensor | None,
        real: torch.Tensor | None,
        pred_parsing: torch.Tensor | None = None,
        target_parsing: torch.Tensor | None = None,
        target_kp: torch.Tensor | None = None,
        pred_kp: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Feed one batch: ``fake``/``real`` ``(B, 3, H, W)`` in [-1, 1], parsing
        ``(B, H, W)`` labels, keypoints ``(B, 18, 2)`` (x, y). Returns the per-image
        values ``(B,)`` float64 (CPU) of the per-image (mean) metrics fed."""
        given = {"fake": fake, "real": real, "pred_parsing": pred_parsing, "target_parsing": target_parsing,
                 "target_kp": target_kp, "pred_kp": pred_kp}
        batch = {k: torch.as_tensor(v).to(self.device) for k, v in given.items() if v is not None}
        per_image: dict[str, torch.Tensor] = {}
        for name, metric in self.metrics.items():
            if any(key not in batch for key in METRICS[name].inputs):
                continue
            if isinstance(metric, MeanMetric):
                # scored once, kept per image, PSNR capped before it enters the mean
                values = metric.per_image(batch).detach().double().cpu()
                if name == "psnr" and self.psnr_cap is not None:
                    values = values.clamp(max=float(self.psnr_cap))
                metric.accumulate(values)
                per_image[name] = values
            else:
                metric.update(batch)
            self._fed.add(name)
        return per_image

    def details(self) -> dict[str, dict]:
        """Each fed metric's full ``compute()`` (counts, per-class IoU, ...)."""
        return {name: m.compute() for name, m in self.metrics.items() if name in self._fed}

    def compute(self) -> dict[str, float]:
        """``{metric name: value}`` of the metrics that received data."""
        return {name: float(d[name]) for name, d in self.details().items()}

    @property
    def protocol(self) -> dict[str, dict]:
        return {name: dict(m.protocol) for name, m in self.metrics.items()}


# --------------------------------------------------------------------------- options and results


def evaluate_batches(net, batches, stage2: bool = True, autocast=None) -> dict[str, float]:
    """Validation numbers over ``batches`` with the project's one metric code path
    (:class:`BatchEvaluator`): l1, ssim, psnr (when ``stage2``),
    stage-1 ``miou`` and cross-entropy ``ce``."""
    names = ("ssim", "psnr", "l1", "parsing_miou") if stage2 else ("parsing_miou",)
    evaluator = None
    ce_sum, n = 0.0, 0
    for b in batches:
        out = net.infer(b, autocast=autocast, stage2=stage2)
        if evaluator is None:
            evaluator = BatchEvaluator(metrics=names, device=b["src_image"].device)
        evaluator.update(out.get("image"), b["tgt_image"], pred_parsing=out["parsing"], target_parsing=b["tgt_parsing"])
        ce_sum += float(F.cross_entropy(out["logits"], b["tgt_parsing"], reduction="sum")) / b["tgt_parsing"][0].numel()
        n += b["tgt_parsing"].shape[0]
    result = evaluator.compute() if evaluator is not None else {}
    result["ce"] = ce_sum / max(n, 1)
    if "parsing_miou" in result:
        result["miou"] = result.pop("parsing_miou")
    return result


__all__ = ["BatchEvaluator", "evaluate_batches"]
