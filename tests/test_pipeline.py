"""spgnet.pipeline with the official flow network (train.flow: official): the flow stage 2
sees is the network's, computed from the keypoints alone; a checkpoint carries the network
as the model "flow" and load_pipeline restores it; the trainer refuses to train with it."""

from __future__ import annotations

import pytest
import torch

from spgnet import SPGNetError
from spgnet.data.dataset import PairDataset, complete_batch
from spgnet.models.official_flow import official_flow
from spgnet.pipeline import SPGNet, load_pipeline
from spgnet.training.trainer import Trainer
from spgnet.utils.checkpoint import save_checkpoint

from helpers import tiny_config

OFFICIAL_FLOW = ["train.flow=official", "data.load_size=[64,48]", "model.flow_net.nf=2", "model.flow_net.num_scale=2",
                 "model.flow_net.disk_radius=3"]


@pytest.fixture(scope="module")
def batch_and_cfg(tiny_dataset):
    cfg = tiny_config(tiny_dataset, *OFFICIAL_FLOW)
    data = PairDataset(cfg.data, "test")
    batch = torch.utils.data.default_collate([data[i] for i in range(2)])
    return complete_batch(batch, cfg.data, "cpu"), cfg


def randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if t.dim() == 1 else torch.randn(t.shape, generator=g))


def test_official_flow_is_what_stage2_sees(batch_and_cfg):
    batch, cfg = batch_and_cfg
    torch.manual_seed(0)
    net = SPGNet(cfg).eval()
    randomize(net.flow_net, 1)
    assert not any(p.requires_grad for p in net.flow_net.parameters())  # never trained
    flow, vis = net.flow(batch, batch["tgt_parsing"])
    expected = official_flow(net.flow_net, batch["src_kp"], batch["tgt_kp"], (64, 48), 3)
    torch.testing.assert_close(flow, expected[0], rtol=0, atol=0)
    torch.testing.assert_close(vis, expected[1], rtol=0, atol=0)
    assert set(vis.unique().tolist()) <= {0.0, 1.0, 2.0} and flow.abs().max() > 0
    # the target parsing does not enter the official flow (keypoints only)
    other, _ = net.flow(batch, torch.zeros_like(batch["tgt_parsing"]))
    torch.testing.assert_close(other, flow, rtol=0, atol=0)
    out = net.infer(batch, target_parsing="ground-truth")
    assert out["image"].shape == (2, 3, 64, 48)


def test_checkpoint_carries_the_flow_network(batch_and_cfg, tmp_path):
    _, cfg = batch_and_cfg
    torch.manual_seed(0)
    net = SPGNet(cfg)
    randomize(net.flow_net, 2)
    path = save_checkpoint(tmp_path / "ckpt", models={"stage1": net.stage1, "generator": net.generator,
                                                      "flow": net.flow_net}, config_dict=cfg)
    loaded = load_pipeline(path)
    for name, value in net.flow_net.state_dict().items():
        assert torch.equal(loaded.flow_net.state_dict()[name], value), name
    assert not loaded.flow_net.training
    missing = save_checkpoint(tmp_path / "no-flow", models={"stage1": net.stage1, "generator": net.generator},
                              config_dict=cfg)
    with pytest.raises(SPGNetError, match="flow"):
        load_pipeline(missing)


def test_trainer_refuses_the_official_flow(tiny_dataset, tmp_path):
    with pytest.raises(SPGNetError, match="train.flow=official"):
        Trainer(tiny_config(tiny_dataset, *OFFICIAL_FLOW), run_dir=tmp_path / "run", progress=False)
