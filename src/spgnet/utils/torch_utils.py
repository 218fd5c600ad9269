"""Small torch helpers shared by the models, training and the tools (one of each)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn as nn


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily ``requires_grad=False`` on every parameter of ``module``; gradients
    still flow through it to its inputs."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (the count the official release reports)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter``: a multiply-add counts as 2).
    Works on the meta device, where nothing is computed."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def no_autocast(device: torch.device | str):
    """A context in which autocast is off on ``device`` (CPU and CUDA; a no-op elsewhere):
    for sums and coordinates that need float32 inside mixed-precision code."""
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext()


__all__ = ["count_flops", "count_parameters", "frozen", "no_autocast"]
