"""Exponential moving average (EMA) of a module's weights (``train.ema_decay``).

:class:`ModelEMA` keeps a deep copy of a module whose floating-point parameters follow
the live ones as ``ema = decay * ema + (1 - decay) * live`` after every optimizer step
(:meth:`ModelEMA.update`), a cheap form of weight averaging that usually scores and
generates better than the last weights of a noisy GAN run. The buffers (BatchNorm
running statistics and counters, spectral norm's ``u``/``v``) are not averaged but
copied from the live module: they belong to the live weights, which is why the trainer
recalibrates the BatchNorm statistics of the EMA copy before scoring it
(:meth:`spgnet.training.trainer.Trainer.recompute_bn_stats`).

The copy lives on the live module's device and dtypes, in eval mode, with
``requires_grad`` off; the update runs under ``no_grad`` and draws no random numbers.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from spgnet.utils.checkpoint import unwrap_model


class ModelEMA:
    """An exponential moving average of ``model`` (DDP/``torch.compile`` wrappers are
    unwrapped). ``module`` is the averaged copy (save it, score it; never train it).

    Starts equal to ``model``; each :meth:`update` moves every floating parameter a
    fraction ``1 - decay`` of the way to the live one (``lerp``) and copies the buffers.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ModelEMA: decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._source = unwrap_model(model)  # checked once: the copy has its structure

    def _pairs(self, model: nn.Module) -> tuple[list, list]:
        """(ema, live) parameter pairs and buffer pairs; the structures must match."""
        model = unwrap_model(model)
        names = lambda m: ([n for n, _ in m.named_parameters()], [n for n, _ in m.named_buffers()])  # noqa: E731
        if model is not self._source and names(model) != names(self.module):
            raise ValueError(f"ModelEMA: {type(model).__name__} does not have the parameters and buffers "
                             f"of the averaged {type(self.module).__name__}")
        return (list(zip(self.module.parameters(), model.parameters())),
                list(zip(self.module.buffers(), model.buffers())))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from the current weights of ``model`` (the module this EMA was
        made from, or one of the same structure): floating parameters
        ``ema += (1 - decay) * (live - ema)``, everything else and all buffers copied."""
        params, buffers = self._pairs(model)
        weight = 1.0 - self.decay
        groups: dict[tuple, tuple[list, list]] = {}  # _foreach needs one device and dtype per call
        for ema, live in params:
            if ema.is_floating_point():
                ema_list, live_list = groups.setdefault((ema.device, ema.dtype), ([], []))
                ema_list.append(ema)
                live_list.append(live.detach().to(ema.dtype))
            else:
                ema.copy_(live)
        for ema_list, live_list in groups.values():
            if hasattr(torch, "_foreach_lerp_"):
                torch._foreach_lerp_(ema_list, live_list, weight)
            else:  # pragma: no cover - older torch
                for e, p in zip(ema_list, live_list):
                    e.lerp_(p, weight)
        for ema, live in buffers:
            ema.copy_(live)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the average equal to ``model``'s current parameters and buffers (e.g. when
        resuming from a checkpoint saved without EMA weights)."""
        params, buffers = self._pairs(model)
        for ema, live in params + buffers:
            ema.copy_(live)


__all__ = ["ModelEMA"]
