"""Structured run logs (stylegan3 style): a text log, ``metrics.jsonl``, TensorBoard
scalars and image grids, and auto-numbered run directories. Rank 0 only."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.utils.io import tensor_to_image


_NUMBERED = re.compile(r"^(\d+)-")


def _numbers(out_dir: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for p in out_dir.iterdir():
        if m := _NUMBERED.match(p.name):
            found.setdefault(int(m.group(1)), []).append(p.name)
    return found


def next_run_dir(out_dir: str | Path, name: str, attempts: int = 100) -> Path:
    """``out_dir/00003-name``: one more than the highest number already there, created
    here (``mkdir``, exclusive). Runs started at the same moment never share a folder or a
    number: a folder another run created first is skipped (the ``mkdir`` fails), and when
    two runs of different names got the same number, both give it up and try again."""
    import random
    import time

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        number = max(_numbers(out_dir), default=-1) + 1
        run = out_dir / f"{number:05d}-{name}"
        try:
            run.mkdir()
        except FileExistsError:
            continue  # another run took this one between the listing and the mkdir
        if _numbers(out_dir).get(number, []) == [run.name]:
            return run
        run.rmdir()  # another name has this number too: both retry, after a random pause
        time.sleep(random.uniform(0.0, 0.05))
    raise SPGNetError(f"{out_dir}: could not create a numbered run folder after {attempts} attempts "
                      "(many runs starting at once); pass --run-dir")


class RunLogger:
    """Writes ``metrics.jsonl`` and ``log.txt`` in the run directory, and TensorBoard
    events when the ``tensorboard`` package is installed (it is in the ``train`` extra).

    After a resume, :meth:`resume` drops what the interrupted run logged after the
    checkpoint it resumes from (those steps run again): ``metrics.jsonl`` is cut back to
    its length when the checkpoint was saved (:meth:`metrics_offset`, stored in the
    checkpoint), and TensorBoard hides the events of the steps after it (``purge_step``).
    ``log.txt`` is a history and is kept whole."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = None
        self._tensorboard = tensorboard
        self._purge_step: int | None = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._text = open(self.run_dir / "log.txt", "a", buffering=1)

    def _writer(self):
        """The TensorBoard writer, made on first use (after :meth:`resume`, which sets its
        purge step); None without the tensorboard package."""
        if self.writer is None and self._tensorboard:
            self._tensorboard = False  # one attempt
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self.text("tensorboard is not installed: no TensorBoard events (pip install tensorboard)")
            else:
                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self._purge_step)
        return self.writer

    def text(self, message: str) -> None:
        if self.enabled:
            self._text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def scalars(self, kind: str, step: int, values: dict[str, float], **extra) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3), **extra}
        record.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self._writer() is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{kind}/{k}", float(v), step)

    def image(self, tag: str, step: int, grid: np.ndarray) -> None:
        if self.enabled and self._writer() is not None:
            self.writer.add_image(tag, grid, step, dataformats="HWC")

    def metrics_offset(self) -> int:
        """The length of ``metrics.jsonl`` now (0 when disabled): a checkpoint stores it."""
        if not self.enabled:
            return 0
        self._jsonl.flush()
        return self._jsonl.tell()

    def resume(self, step: int, offset: int | None) -> int:
        """Forget what was logged after the checkpoint of ``step`` (see the class docstring):
        ``metrics.jsonl`` is cut to ``offset`` bytes, or without one (older checkpoints) the
        records of later steps are dropped; TensorBoard events after ``step`` are purged.
        Returns the number of records dropped."""
        if not self.enabled:
            return 0
        self._purge_step = step + 1
        if self.writer is not None:  # made before the resume: reopen with the purge step
            self.writer.close()
            self.writer, self._tensorboard = None, True
        path = self.run_dir / "metrics.jsonl"
        self._jsonl.close()
        data = path.read_bytes()
        if offset is not None and 0 <= offset <= len(data) and (offset == 0 or data[offset - 1:offset] == b"\n"):
            kept = data[:offset]
        else:
            lines = data.splitlines(keepends=True)
            kept = b"".join(line for line in lines if _record_step(line) <= step)
        if kept != data:
            from spgnet.utils.io import atomic_write_bytes

            atomic_write_bytes(path, kept)
        self._jsonl = open(path, "a", buffering=1)
        return len(data.splitlines()) - len(kept.splitlines())

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        self._text.close()
        if self.writer is not None:
            self.writer.close()


def _record_step(line: bytes) -> int:
    """The ``step`` of a metrics.jsonl line (-1 for a line that is not a record: kept)."""
    try:
        step = json.loads(line).get("step", -1)
    except (ValueError, AttributeError):
        return -1
    return step if isinstance(step, int) else -1


def image_grid(columns: list[torch.Tensor], max_rows: int = 4) -> np.ndarray:
    """Tile ``columns`` (each ``(B, 3, H, W)`` in [-1, 1]) into one uint8 ``(H·rows, W·cols, 3)``."""
    rows = min(max_rows, columns[0].shape[0])
    tiles = [[tensor_to_image(col[r]) for col in columns] for r in range(rows)]
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
