"""Helpers the test modules import (fixtures are in conftest.py): the tiny SPGNet config
(channels 4-8, 3 U-Net scales) on 64x44 synthetic people, a thread-count guard, and
synthetic-people parsing maps for the ACE kernel tests."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from spgnet.config import Config, load_config
from spgnet.data.synth import render_person, sample_identity, sample_pose

SIZE = (64, 44)  # (H, W) of the synthetic images and of the samples
TINY_OVERRIDES = [
    "name=tiny", "data.load_size=[64,44]", "data.image_size=null", "data.pose.sigma=3.0", "data.pose.kappa=-0.2",
    "model.generator.nf=4", "model.generator.max_nf=8", "model.generator.num_scales=3",
    "model.generator.num_warp_scales=2", "model.generator.num_res_blocks=1", "model.generator.style_dim=8",
    "model.generator.style_nf=4", "model.generator.spade_hidden=8", "model.generator.ace_kernel=3",
    "model.spatn.dim=4", "model.spatn.num_blocks=1", "model.discriminator.ndf=4",
    "train.batch_size=2", "train.workers=0", "train.device=cpu", "train.losses.perceptual=0", "train.image_every=0",
]


def tiny_config(root: Path, *overrides: str) -> Config:
    """The tiny config over the dataset at ``root``, with ``key=value`` overrides on top."""
    return load_config(None, [f"data.root={root}", *TINY_OVERRIDES, *overrides])


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` intra-op threads (2 loaded cores: more threads than free cores
    only spin, a tiny step took 10x longer with 2 than with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def people(n: int, size: tuple[int, int], seed: int) -> list[dict]:
    """n renders of n/2 synthetic identities, two poses each (src, tgt, src, tgt, ...)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n // 2):
        identity = sample_identity(rng)
        out += [render_person(identity, sample_pose(rng), size) for _ in range(2)]
    return out


def labels_of(renders) -> torch.Tensor:
    """``(N, H, W)`` int64 CIHP labels of :func:`people` renders."""
    return torch.from_numpy(np.stack([r["parsing"] for r in renders])).long()
