"""The metric registry (after stylegan3's ``metrics/metric_main.py``).

A metric is a class registered with ``@register_metric``: a name, one line saying
which reference implementation it matches, the batch keys it reads, the weights files
it needs and whether higher is better. Training validation and ``spgnet evaluate``
create metrics by name, feed them the same batch dicts and read ``compute()``, so both
report the same numbers.

Batch dict keys (tensors on any device):

==================  ==========================================================
``fake``            ``(B, 3, H, W)`` float in [-1, 1], generated images
``real``            ``(B, 3, H, W)`` float in [-1, 1], ground-truth targets
``target_kp``       ``(B, 18, 2)`` (x, y) target keypoints (annotation)
``pred_kp``         ``(B, 18, 2)`` (x, y) keypoints detected on ``fake``
``pred_parsing``    ``(B, H, W)`` int, predicted target parsing (stage 1)
``target_parsing``  ``(B, H, W)`` int, ground-truth target parsing
==================  ==========================================================

Generated images are scored as their 8-bit version (what saving them would give).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from spgnet import SPGNetError


@dataclass(frozen=True)
class MetricInfo:
    name: str
    cls: type
    matches: str  # the reference implementation it reproduces
    inputs: tuple[str, ...]  # batch keys read by update()
    weights: tuple[str, ...]  # weights files needed (default configuration)
    higher_is_better: bool


METRICS: dict[str, MetricInfo] = {}


def register_metric(
    name: str,
    *,
    matches: str,
    inputs: tuple[str, ...],
    weights: tuple[str, ...] = (),
    higher_is_better: bool = True,
) -> Callable[[type], type]:
    """Class decorator adding a ``Metric`` subclass to ``METRICS`` under ``name``."""

    def decorate(cls: type) -> type:
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        cls.name = name
        METRICS[name] = MetricInfo(name, cls, matches, tuple(inputs), tuple(weights), higher_is_better)
        return cls

    return decorate


def create_metric(name: str, **options) -> Metric:
    """A fresh accumulator for the registered metric ``name``."""
    if name not in METRICS:
        raise SPGNetError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
    return METRICS[name].cls(**options)


class Metric:
    """Accumulates over batches: ``update(batch)`` any number of times, then
    ``compute()`` -> ``{name: value, ...}``. ``protocol`` states every choice made."""

    name: str = ""

    def __init__(self) -> None:
        self.protocol: dict[str, object] = {}

    def update(self, batch: Mapping[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def _inputs(self, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        info = METRICS[self.name]
        missing = [k for k in info.inputs if k not in batch]
        if missing:
            raise KeyError(f"metric {self.name!r} needs batch keys {list(info.inputs)}; missing {missing}")
        return [batch[k] for k in info.inputs]


class MeanMetric(Metric):
    """A per-image score averaged over all images (float64 running sum)."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def per_image(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B,)`` scores of one batch."""
        raise NotImplementedError

    def update(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Score one batch and add it to the mean; returns the ``(B,)`` float64 CPU scores."""
        values = self.per_image(batch).detach().double().cpu()
        self.accumulate(values)
        return values

    def accumulate(self, values: torch.Tensor) -> None:
        """Add already computed per-image scores (e.g. capped ones) to the mean."""
        self.total += float(values.sum())
        self.count += values.numel()

    def compute(self) -> dict[str, float]:
        return {self.name: self.total / self.count if self.count else float("nan"), "count": self.count}

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0
