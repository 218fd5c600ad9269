"""Fixtures shared across the test folders (which mirror src/spgnet). Importable helpers
are in helpers.py (this folder is on sys.path through this file)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from helpers import SIZE, tiny_config, torch_threads


@pytest.fixture
def hf_offline(monkeypatch):
    """Hugging Face hub offline, no weight folders from the environment, and any network
    connection fails the test (the learned parser and keypoints read local folders only)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("SPGNET_PARSER_WEIGHTS", raising=False)
    monkeypatch.delenv("SPGNET_KEYPOINT_WEIGHTS", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (2 loaded cores: more threads only spin)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """``synthetic_dataset(train_pairs, test_pairs, (H, W), seed) -> root``: a synthetic-people
    dataset in the standard layout, written once per session for each set of arguments.
    Read-only: take a :func:`writable_copy` before changing it."""
    from spgnet.data.synth import write_synthetic_dataset

    made: dict[tuple, Path] = {}

    def make(train_pairs: int, test_pairs: int, size: tuple[int, int], seed: int) -> Path:
        key = (train_pairs, test_pairs, tuple(size), seed)
        if key not in made:
            root = tmp_path_factory.mktemp("synth") / "data"
            write_synthetic_dataset(root, train_pairs, test_pairs=test_pairs, size=tuple(size), seed=seed,
                                    progress=False)
            made[key] = root
        return made[key]

    return make


@pytest.fixture()
def writable_copy(tmp_path):
    """``writable_copy(root) -> copy``: a copy of a dataset under this test's tmp_path."""
    def copy(root: Path) -> Path:
        dst = tmp_path / "data"
        shutil.copytree(root, dst)
        return dst

    return copy


@pytest.fixture(scope="session")
def tiny_dataset(synthetic_dataset) -> Path:
    """Synthetic people at the tiny size: 8 train / 5 test pairs (seed 1). Read-only."""
    return synthetic_dataset(8, 5, SIZE, 1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset) -> dict:
    """A 2-step run of the tiny config on :func:`tiny_dataset`: ``{"root", "config" (the
    YAML file), "run" (run directory), "ckpt" (its ``last`` checkpoint)}``. Read-only:
    copy it before changing anything."""
    from spgnet.config import dump_config, load_config
    from spgnet.training.trainer import Trainer

    base = tmp_path_factory.mktemp("tiny-run")
    config = base / "tiny.yaml"
    config.write_text(dump_config(tiny_config(tiny_dataset, "train.val_every=0", "train.max_steps=2")))
    with torch_threads(1):
        Trainer(load_config(config), run_dir=base / "run", progress=False).fit()
    return {"root": tiny_dataset, "config": config, "run": base / "run", "ckpt": base / "run" / "checkpoints" / "last"}
