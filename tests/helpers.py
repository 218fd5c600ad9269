"""Helpers the test modules import (fixtures are in conftest.py): the tiny SPGNet config
(channels 4-8, 3 U-Net scales) on 64x44 synthetic people, a thread-count guard, a check
for one-line errors,
synthetic-people parsing maps for the ACE kernel tests, and random files shaped exactly
like the official release's (generator from the name/shape lists in tests/assets, a
tiny flow network with its train_opt.json)."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from spgnet import SPGNetError
from spgnet.config import Config, load_config
from spgnet.data.synth import render_person, sample_identity, sample_pose
from spgnet.models.config import FlowNetConfig
from spgnet.models.official_flow import OfficialFlowNet

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


def one_line_error(call, *parts: str) -> str:
    """``call()`` must raise :class:`SPGNetError` with a one-line message holding every one of ``parts``."""
    with pytest.raises(SPGNetError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


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


# --------------------------------------------------------------------------- official release files

ASSETS = Path(__file__).resolve().parent / "assets"
UNUSED = ".Spade.param_free_norm."  # the official ACE's never-called BatchNorm (always at its initial values)
FLOW = FlowNetConfig(nf=2, start_scale=2, num_scale=2, norm="batch")  # tiny; runs at 128x64


def read_official_tsv(dataset: str) -> tuple[int, dict[str, tuple[int, ...]]]:
    """The official generator's name/shape list (tests/assets, dumped from the official code):
    ``(trainable parameter count of its header line, {name: shape})``."""
    lines = (ASSETS / f"official-{dataset}-generator-params.tsv").read_text().splitlines()
    total = int(re.search(r"(\d+) trainable parameters", lines[0]).group(1))
    assert lines[1] == "name\tshape"
    rows = (line.split("\t") for line in lines[2:])
    return total, {name: () if shape == "scalar" else tuple(int(s) for s in shape.split("x")) for name, shape in rows}


def read_tsv(dataset: str) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of :func:`read_official_tsv`."""
    return read_official_tsv(dataset)[1]


def random_official_state(dataset: str, seed: int) -> dict[str, torch.Tensor]:
    """Every tensor of the official generator's file, random (BatchNorm variances positive,
    counters random), except the unused SPADE BatchNorm buffers, which real files hold at
    their initial values."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in read_tsv(dataset).items():
        if name.endswith("num_batches_tracked"):
            value = torch.tensor(0) if UNUSED in name else torch.randint(1, 10**6, shape, generator=g)
        elif UNUSED in name:
            value = torch.ones(shape) if name.endswith("running_var") else torch.zeros(shape)
        elif name.endswith("running_var"):
            value = torch.rand(shape, generator=g) + 0.5
        else:
            value = torch.randn(shape, generator=g)
        state[name] = value
    return state


def train_opt(**changes) -> dict:
    """A train_opt.json as the official option parser writes it (a subset of its keys)."""
    opt = {"id": "FlowReg_market", "which_model": "unet", "norm": FLOW.norm, "nf": FLOW.nf, "max_nf": 128,
           "input_type1": "joint", "input_type2": "joint", "start_scale": FLOW.start_scale,
           "num_scale": FLOW.num_scale, "joint_nc": 18, "joint_mode": "binary", "joint_radius": 4}
    opt.update(changes)
    return opt


def random_flow_state(cfg: FlowNetConfig, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = OfficialFlowNet(cfg).state_dict()
    return {n: (torch.randint(1, 100, t.shape, generator=g) if n.endswith("num_batches_tracked")
                else torch.rand(t.shape, generator=g) + 0.5 if n.endswith("running_var")
                else torch.randn(t.shape, generator=g)) for n, t in state.items()}


def write_flow_dir(folder: Path, state: dict[str, torch.Tensor], opt: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "best_net_netF.pth")
    (folder / "train_opt.json").write_text(json.dumps(opt), encoding="utf-8")
    return folder
