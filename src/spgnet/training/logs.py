"""Structured run logs (stylegan3 style): a text log, ``metrics.jsonl``, TensorBoard
scalars and image grids, and auto-numbered run directories. Rank 0 only."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from spgnet.utils.io import tensor_to_image


def next_run_dir(out_dir: str | Path, name: str) -> Path:
    """``out_dir/00003-name``: one more than the highest number already there."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in out_dir.iterdir() if (m := re.match(r"^(\d+)-", p.name))]
    run = out_dir / f"{max(numbers, default=-1) + 1:05d}-{name}"
    run.mkdir()
    return run


class RunLogger:
    """Writes ``metrics.jsonl`` and ``log.txt`` in the run directory, and TensorBoard
    events when the ``tensorboard`` package is installed (it is in the ``train`` extra)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._text = open(self.run_dir / "log.txt", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self.text("tensorboard is not installed: no TensorBoard events (pip install tensorboard)")
            else:
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def text(self, message: str) -> None:
        if self.enabled:
            self._text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def scalars(self, kind: str, step: int, values: dict[str, float], **extra) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **extra}
        record.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{kind}/{k}", float(v), step)

    def image(self, tag: str, step: int, grid: np.ndarray) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, grid, step, dataformats="HWC")

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        self._text.close()
        if self.writer is not None:
            self.writer.close()


def image_grid(columns: list[torch.Tensor], max_rows: int = 4) -> np.ndarray:
    """Tile ``columns`` (each ``(B, 3, H, W)`` in [-1, 1]) into one uint8 ``(H·rows, W·cols, 3)``."""
    rows = min(max_rows, columns[0].shape[0])
    tiles = [[tensor_to_image(col[r]) for col in columns] for r in range(rows)]
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
