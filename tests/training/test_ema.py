"""EMA of the weights (spgnet.training.ema, ``train.ema_decay``): ModelEMA follows the
recursion ema_k = d·ema_{k-1} + (1-d)·p_k (checked against sums computed here), the trainer
updates it after exactly the optimizer steps that ran, checkpoints store it, a resume
continues it bit-exactly, validation scores it and ``load_pipeline`` loads it by default.

Tiny model (channels 4-8) on the session's tiny synthetic dataset (8 train pairs, batch
2: 4 steps per epoch), one torch thread.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

import spgnet.training.trainer as trainer_mod
from spgnet import SPGNetError
from spgnet.config import ConfigValueError
from spgnet.evaluation.batch import evaluate_batches
from spgnet.pipeline import load_pipeline
from spgnet.training.ema import ModelEMA
from spgnet.training.precise_bn import recompute_bn_stats
from spgnet.training.trainer import Trainer
from spgnet.utils.checkpoint import read_checkpoint_info, read_model_state

import helpers

pytestmark = pytest.mark.usefixtures("one_thread")
STAGES = ("stage1", "generator")


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def recursion(snapshots: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """ema after len(snapshots)-1 updates, written out as the closed-form sum
    d^k·p_0 + Σ_{j=1..k} (1-d)·d^(k-j)·p_j, in float64 (p_0: the weights at the start)."""
    k = len(snapshots) - 1
    return {name: decay ** k * snapshots[0][name].double()
            + sum((1 - decay) * decay ** (k - j) * snapshots[j][name].double() for j in range(1, k + 1))
            for name in snapshots[0]}


def assert_params_close(module: nn.Module, expected: dict[str, torch.Tensor], rtol: float = 1e-6) -> None:
    got = dict(module.named_parameters())
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name].detach().double(), value, rtol=rtol, atol=1e-7, msg=name)


# --------------------------------------------------------------------------- ModelEMA


def test_model_ema_follows_the_recursion_and_copies_buffers():
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double()
    decay = 0.75
    ema = ModelEMA(live, decay)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in live.parameters())  # the live model is untouched

    # known parameter values per step: p_j = j-th row of a fixed table, per tensor
    snapshots = [params(live)]
    for j in range(1, 5):
        with torch.no_grad():
            for i, p in enumerate(live.parameters()):
                p.copy_(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) * (j + i) - 2.0 * j)
        live.train()(torch.randn(4, 3, dtype=torch.float64))  # moves the BatchNorm running statistics
        # a wrapper (DataParallel here, DDP in training) is unwrapped
        ema.update(nn.DataParallel(live) if j == 2 else live)
        snapshots.append(params(live))

    assert_params_close(ema.module, recursion(snapshots, decay), rtol=1e-12)
    for (name, b_ema), (_, b_live) in zip(ema.module.named_buffers(), live.named_buffers()):
        assert torch.equal(b_ema, b_live), name
    assert int(ema.module[1].num_batches_tracked) == 4
    # a copy, not a view of the live weights
    with torch.no_grad():
        live[0].weight.add_(100.0)
    assert not torch.equal(ema.module[0].weight, live[0].weight)


def test_model_ema_works_in_float32_and_checks_the_structure():
    torch.manual_seed(0)
    live = nn.Linear(4, 3)
    ema = ModelEMA(live, 0.9)
    start = params(live)
    with torch.no_grad():
        live.weight.fill_(1.0)
        live.bias.fill_(-1.0)
    ema.update(live)
    torch.testing.assert_close(ema.module.weight, 0.9 * start["weight"] + 0.1, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ema.module.bias, 0.9 * start["bias"] - 0.1, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="does not have the parameters"):
        ema.update(nn.Linear(4, 5, bias=False))
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(live, 1.0)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5", "abc"])
def test_config_rejects_ema_decay_outside_0_1(tiny_dataset, value):
    with pytest.raises(ConfigValueError, match=r"train\.ema_decay") as info:
        helpers.tiny_config(tiny_dataset, f"train.ema_decay={value}")
    assert "[0.0, 1.0)" in str(info.value) or "[0, 1)" in str(info.value)


def test_config_ema_decay_default_off_and_accepted_values(tiny_dataset):
    assert helpers.tiny_config(tiny_dataset).train.ema_decay == 0.0
    assert helpers.tiny_config(tiny_dataset, "train.ema_decay=0.999").train.ema_decay == 0.999
    assert helpers.tiny_config(tiny_dataset, "train.ema_decay=0").train.ema_decay == 0.0


# --------------------------------------------------------------------------- in the trainer


def batches(trainer: Trainer, n: int) -> list[dict]:
    trainer.sampler.set_epoch(0)
    loader = iter(trainer._loader(trainer.train_set, sampler=trainer.sampler))
    return [next(loader) for _ in range(n)]


def test_trainer_ema_is_the_recursion_of_the_weights_after_each_step(tiny_dataset, tmp_path):
    cfg = helpers.tiny_config(tiny_dataset, "train.ema_decay=0.5", "train.max_steps=3", "train.val_every=0",
                              "train.precise_bn_batches=0")
    tr = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    raw = {"stage1": tr.net.stage1, "generator": tr.net.generator}
    snaps = {name: [params(m)] for name, m in raw.items()}
    for batch in batches(tr, 3):
        assert not tr.train_step(batch).skipped
        for name, m in raw.items():
            snaps[name].append(params(m))
    for name in STAGES:
        assert any(not torch.equal(snaps[name][0][k], snaps[name][-1][k]) for k in snaps[name][0])  # it trained
        assert_params_close(tr.ema[name].module, recursion(snaps[name], 0.5))
        for (k, b_ema), (_, b_live) in zip(tr.ema[name].module.named_buffers(), raw[name].named_buffers()):
            assert torch.equal(b_ema, b_live), (name, k)


def test_trainer_ema_skips_steps_that_did_not_run(tiny_dataset, tmp_path, monkeypatch):
    """Sequential phase 1: the generator does not step, so its average stays at the initial
    weights; a step skipped for a non-finite loss moves no average."""
    cfg = helpers.tiny_config(tiny_dataset, "train.ema_decay=0.5", "train.scheme=sequential", "train.stage1_epochs=1",
                              "train.val_every=0", "train.precise_bn_batches=0")
    tr = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    b1, b2 = batches(tr, 2)
    s0, g0 = params(tr.net.stage1), params(tr.net.generator)
    assert not tr.train_step(b1).skipped
    s1 = params(tr.net.stage1)
    assert_params_close(tr.ema["stage1"].module, recursion([s0, s1], 0.5))
    assert_params_close(tr.ema["generator"].module, recursion([g0], 0.5))  # = g0

    tr.epoch = 1  # phase 2: only the generator trains; make its loss NaN
    real = trainer_mod.l1
    monkeypatch.setattr(trainer_mod, "l1", lambda a, b: real(a, b) * float("nan"))
    assert tr.train_step(b2).skipped
    assert_params_close(tr.ema["stage1"].module, recursion([s0, s1], 0.5))
    assert_params_close(tr.ema["generator"].module, recursion([g0], 0.5))
    monkeypatch.setattr(trainer_mod, "l1", real)
    assert not tr.train_step(b2).skipped
    assert_params_close(tr.ema["stage1"].module, recursion([s0, s1], 0.5))  # stage 1 frozen now
    assert_params_close(tr.ema["generator"].module, recursion([g0, params(tr.net.generator)], 0.5))


@pytest.fixture(scope="module")
def ema_run(tiny_dataset, tmp_path_factory) -> dict:
    """A 2-step run with train.ema_decay=0.5 (and the final precise-BN pass)."""
    run = tmp_path_factory.mktemp("ema-run") / "run"
    cfg = helpers.tiny_config(tiny_dataset, "train.ema_decay=0.5", "train.max_steps=2", "train.val_every=0",
                              "train.precise_bn_batches=1")
    tr = Trainer(cfg, run_dir=run, progress=False)
    tr.fit()
    return {"trainer": tr, "run": run, "ckpt": run / "checkpoints" / "last"}


def test_checkpoint_holds_ema_and_load_pipeline_uses_it(ema_run, tiny_run):
    ckpt = ema_run["ckpt"]
    assert (ckpt / "ema-stage1.safetensors").is_file() and (ckpt / "ema-generator.safetensors").is_file()
    assert set(read_checkpoint_info(ckpt)["ema"]) == set(STAGES)

    default, raw_net = load_pipeline(ckpt), load_pipeline(ckpt, ema=False)
    explicit = load_pipeline(ckpt, ema=True)
    for name in STAGES:
        ema_state = read_model_state(ckpt, name, ema=True)
        raw_state = read_model_state(ckpt, name)
        assert any(not torch.equal(ema_state[k], raw_state[k]) for k in raw_state), name  # the two differ
        for net in (default, explicit):
            got = getattr(net, name).state_dict()
            assert got.keys() == ema_state.keys()
            assert all(torch.equal(got[k], ema_state[k]) for k in got), name
        got = getattr(raw_net, name).state_dict()
        assert all(torch.equal(got[k], raw_state[k]) for k in got), name
        # the file is the trainer's average
        live = ema_run["trainer"].ema[name].module.state_dict()
        assert all(torch.equal(live[k], ema_state[k]) for k in live), name

    with pytest.raises(SPGNetError) as info:
        load_pipeline(tiny_run["ckpt"], ema=True)
    message = str(info.value)
    assert "\n" not in message and str(tiny_run["ckpt"]) in message and "EMA" in message


def test_ema_off_saves_no_ema_files(tiny_run):
    ckpt = tiny_run["ckpt"]  # a run with the default train.ema_decay=0
    assert list(ckpt.glob("ema-*")) == []
    assert json.loads((ckpt / "checkpoint.json").read_text())["ema"] == {}
    net = load_pipeline(ckpt)  # default: the raw weights
    raw = read_model_state(ckpt, "generator")
    assert all(torch.equal(v, raw[k]) for k, v in net.generator.state_dict().items())


def test_ema_recalibrates_its_own_batchnorm_statistics(ema_run):
    """The final precise-BN pass set the EMA copies' running statistics from their own
    weights: they are what recalibrating the stored EMA network on the calibration batch
    gives (not the live ones, which the copies took at the last update)."""
    tr, ckpt = ema_run["trainer"], ema_run["ckpt"]
    net = load_pipeline(ckpt)  # the EMA weights
    b = tr._batch(torch.utils.data.default_collate([tr.train_set[i] for i in tr.calibration_indices()]))

    def forward(_) -> None:  # the parallel scheme: stage 2 on the ground-truth target parsing
        net.stage1(net.stage1_input(b), b["src_pose"], b["tgt_pose"])
        flow, vis = net.flow(b, b["tgt_parsing"])
        net.generator(b["src_image"], b["src_parsing_onehot"], b["tgt_parsing_onehot"], b["tgt_pose"], flow, vis)

    torch.manual_seed(0)
    assert recompute_bn_stats([net.stage1, net.generator], forward, [None]) == 1
    for name in STAGES:
        stored, raw = read_model_state(ckpt, name, ema=True), read_model_state(ckpt, name)
        expected = getattr(net, name).state_dict()
        running = [k for k in raw if k.endswith(("running_mean", "running_var"))]
        assert running and any(not torch.equal(stored[k], raw[k]) for k in running), name
        for k in running:  # tolerance: SEAN's noise (scale ~3e-4 after 2 steps) drew other numbers here
            torch.testing.assert_close(stored[k], expected[k], rtol=1e-3, atol=1e-3, msg=f"{name}.{k}")


def test_ema_does_not_change_training(ema_run, tiny_dataset, tmp_path):
    """The raw weights, optimizer states and BatchNorm statistics of an EMA run are
    bit-identical to those of the same run without EMA."""
    run = tmp_path / "plain"
    cfg = helpers.tiny_config(tiny_dataset, "train.max_steps=2", "train.val_every=0", "train.precise_bn_batches=1")
    Trainer(cfg, run_dir=run, progress=False).fit()
    for name in (*STAGES, "discriminator"):
        a = load_file(run / "checkpoints" / "last" / f"model-{name}.safetensors")
        b = load_file(ema_run["ckpt"] / f"model-{name}.safetensors")
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == [], name


def test_resume_with_ema_is_bit_identical(tiny_dataset, tmp_path):
    common = ["train.ema_decay=0.5", "train.val_every=0", "train.precise_bn_batches=1"]
    Trainer(helpers.tiny_config(tiny_dataset, *common, "train.max_steps=4"), run_dir=tmp_path / "full",
            progress=False).fit()
    Trainer(helpers.tiny_config(tiny_dataset, *common, "train.max_steps=2"), run_dir=tmp_path / "split",
            progress=False).fit()
    Trainer(helpers.tiny_config(tiny_dataset, *common, "train.max_steps=4"), run_dir=tmp_path / "split",
            resume=True, progress=False).fit()
    full, split = tmp_path / "full" / "checkpoints" / "last", tmp_path / "split" / "checkpoints" / "last"
    for file in ("ema-stage1", "ema-generator", "model-stage1", "model-generator"):
        a, b = load_file(full / f"{file}.safetensors"), load_file(split / f"{file}.safetensors")
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == [], file


def test_validation_scores_the_ema_weights(ema_run, tmp_path):
    """Resumed from the EMA run, validate() gives the numbers of the EMA network of the
    checkpoint it saves as `best` (loaded from the files), not those of the raw weights."""
    tr = Trainer(ema_run["trainer"].cfg, run_dir=tmp_path / "run", resume=ema_run["ckpt"], progress=False)
    torch.manual_seed(123)  # SEAN noise: the same draws for each evaluation
    metrics = tr.validate()
    assert "validation (EMA weights)" in (tmp_path / "run" / "log.txt").read_text()
    best = tmp_path / "run" / "checkpoints" / "best"
    n = min(tr.cfg.train.val_pairs or len(tr.val_set), len(tr.val_set))

    def score(net) -> dict:
        loader = tr._loader(torch.utils.data.Subset(tr.val_set, list(range(n))), batch_size=tr.cfg.train.batch_size)
        torch.manual_seed(123)
        return evaluate_batches(net, (tr._batch(b) for b in loader), stage2=True)

    ema_metrics, raw_metrics = score(load_pipeline(best)), score(load_pipeline(best, ema=False))
    assert metrics.keys() == ema_metrics.keys()
    for k in metrics:
        assert metrics[k] == pytest.approx(ema_metrics[k], rel=1e-5, abs=1e-6), k
    assert any(metrics[k] != pytest.approx(raw_metrics[k], rel=1e-5, abs=1e-6) for k in metrics)
