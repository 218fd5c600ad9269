"""Fine-tuning: ``spgnet train --init CKPT`` starts the networks CKPT holds from its weights
(the others from scratch), also the official flow network that ``train.flow: official``
needs, which then stays as it was."""

from __future__ import annotations

import pytest
import torch

from spgnet import SPGNetError
from spgnet.cli import main
from spgnet.config import dump_config
from spgnet.pipeline import SPGNet, load_pipeline
from spgnet.training.trainer import Trainer
from spgnet.utils.checkpoint import read_checkpoint_info, read_model_state, save_checkpoint

import helpers

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL_FLOW = ["train.flow=official", "data.load_size=[64,48]", "model.flow_net.nf=2", "model.flow_net.num_scale=2",
                 "model.flow_net.disk_radius=3", "train.val_every=0", "train.precise_bn_batches=0"]


def same(module: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(v, state[k]) for k, v in module.state_dict().items()) and module.state_dict().keys() == state.keys()


def test_init_loads_what_the_checkpoint_holds_and_starts_the_rest_fresh(tiny_run, tmp_path):
    cfg = helpers.tiny_config(tiny_run["root"], "train.val_every=0")
    generator = read_model_state(tiny_run["ckpt"], "generator")
    only_g = save_checkpoint(tmp_path / "g", models={"generator": generator}, config_dict=cfg)
    fresh = Trainer(cfg, run_dir=tmp_path / "fresh", progress=False)
    tuned = Trainer(cfg, run_dir=tmp_path / "tuned", progress=False, init=only_g)
    assert same(tuned.net.generator, generator) and not same(fresh.net.generator, generator)
    # stage 1 and D were not in the checkpoint: the same fresh initialisation as without --init
    assert same(tuned.net.stage1, fresh.net.stage1.state_dict())
    assert same(tuned.discriminator, fresh.discriminator.state_dict())
    assert tuned.step == 0
    full = Trainer(cfg, run_dir=tmp_path / "full", progress=False, init=tiny_run["ckpt"])
    for name in ("stage1", "generator", "discriminator"):
        assert same(full.models()[name], read_model_state(tiny_run["ckpt"], name)), name


def test_official_flow_network_from_init_is_used_and_kept(tiny_dataset, tmp_path):
    cfg = helpers.tiny_config(tiny_dataset, *OFFICIAL_FLOW, "train.max_steps=2")
    torch.manual_seed(5)
    donor = SPGNet(cfg)
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, t in donor.flow_net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var") else
                        torch.randn(t.shape, generator=g))
    flow_state = {k: v.clone() for k, v in donor.flow_net.state_dict().items()}
    init = save_checkpoint(tmp_path / "converted", models={"generator": donor.generator, "flow": donor.flow_net},
                           config_dict=cfg)
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False, init=init)
    assert same(trainer.net.flow_net, flow_state)
    trainer.fit()
    assert trainer.step == 2
    assert same(trainer.net.flow_net, flow_state)  # frozen, eval-mode statistics untouched
    last = tmp_path / "run" / "checkpoints" / "last"
    assert "flow" in read_checkpoint_info(last)["models"]
    assert same(load_pipeline(last).flow_net, flow_state)


def test_official_flow_needs_its_weights(tiny_dataset, tmp_path, tiny_run):
    cfg = helpers.tiny_config(tiny_dataset, *OFFICIAL_FLOW)
    with pytest.raises(SPGNetError, match="--init"):
        Trainer(cfg, run_dir=tmp_path / "a", progress=False)
    with pytest.raises(SPGNetError, match="no official flow network"):
        Trainer(cfg, run_dir=tmp_path / "b", progress=False, init=tiny_run["ckpt"])


def test_cli_init_and_resume_exclude_each_other(tiny_run, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(dump_config(helpers.tiny_config(tiny_run["root"])))
    code = main(["train", "--config", str(config), "--init", str(tiny_run["ckpt"]), "--resume", str(tiny_run["ckpt"]),
                 "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--init" in err
    code = main(["train", "--config", str(config), "--init", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere" in err
