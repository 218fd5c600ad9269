"""Loading a metric network's weights exactly, with an error that names the file."""

from __future__ import annotations

from pathlib import Path

import torch

from spgnet import SPGNetError
from spgnet.weights import load_state_dict_file


def load_exact(module: torch.nn.Module, path: str | Path) -> None:
    """Read ``path`` (safetensors or a ``weights_only`` torch state dict) into ``module``
    with ``strict=True``; a mismatch raises SPGNetError naming the file."""
    state = load_state_dict_file(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise SPGNetError(f"{path}: weights do not fit {type(module).__name__} ({' '.join(lines[:3])})") from None
