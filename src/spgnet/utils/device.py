"""The one device helper: a config / CLI device name -> :class:`torch.device`."""

from __future__ import annotations

import torch

from spgnet import SPGNetError


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0, what: str = "device") -> torch.device:
    """``auto`` (the local rank's GPU when CUDA is available, else the CPU), ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``; a :class:`torch.device` passes through.

    ``cuda`` without an index means the process's local-rank GPU (``torchrun``). An
    unparsable name, or a CUDA device on a machine without CUDA, is an SPGNetError
    naming ``what`` (e.g. ``--device`` or ``train.device``).
    """
    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise SPGNetError(f"{what} {name!r}: not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SPGNetError(f"{what} {device}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


__all__ = ["resolve_device"]
