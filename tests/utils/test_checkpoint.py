"""Checkpoints: exact round trip, bit-identical resume, atomic replacement under a crash,
refusal of pickle payloads and of partial loads."""

from __future__ import annotations

import copy
import json
import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

import spgnet.utils.checkpoint as ckpt
from spgnet import SPGNetError
from spgnet.utils.checkpoint import (
    get_rng_state, load_checkpoint, read_checkpoint_config, read_checkpoint_info, read_model_state,
    save_checkpoint, set_rng_state,
)

CONFIG = {"name": "tiny", "model": {"channels": 4}, "train": {"lr": 0.01}}


class Tiny(nn.Module):
    """Everything a real generator has that could trip a checkpoint: BatchNorm buffers,
    both spectral norms, dropout (RNG), a tied module and a non-contiguous buffer."""

    def __init__(self, extra_layer: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.sn = nn.utils.spectral_norm(nn.Conv2d(4, 4, 3, padding=1))
        self.snp = nn.utils.parametrizations.spectral_norm(nn.Conv2d(4, 4, 1))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, 2)
        self.tied = self.head
        self.register_buffer("transposed", torch.arange(12.0).view(3, 4).t())
        if extra_layer:
            self.more = nn.Linear(2, 2)

    def forward(self, x):
        h = self.drop(F.relu(self.bn(self.conv(x))))
        h = self.snp(F.relu(self.sn(h)))
        return self.tied(h.mean(dim=(2, 3))) + self.transposed.sum() * 1e-3


def make_objects(seed: int):
    torch.manual_seed(seed)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=2)
    return model, opt, sched, scaler


def train_steps(model, opt, sched, scaler, n: int) -> None:
    """Steps that draw from torch, NumPy and Python RNGs, so a resume must restore all."""
    model.train()
    for _ in range(n):
        x = torch.randn(4, 3, 8, 8) * (1 + random.random())
        y = torch.from_numpy(np.random.randn(4, 2)).float()
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def save(path, model, opt, sched, scaler, step=3, epoch=1, **kw):
    return save_checkpoint(path, models={"G": model}, optimizers={"G": opt}, schedulers={"G": sched},
                           scalers={"G": scaler}, step=step, epoch=epoch, config_dict=CONFIG,
                           extra=kw.pop("extra", {"best": 0.25, "history": [1, 2]}), **kw)


def leftovers(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_round_trip_restores_weights_optimizer_scheduler_scaler_and_rng(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    train_steps(model, opt, sched, scaler, 3)
    ema = _with_state(model.state_dict())  # (deepcopy fails on old-style spectral norm after a forward)
    path = save(tmp_path / "last", model, opt, sched, scaler, ema={"G": ema})
    after_save = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])

    # the files: plain safetensors weights, a weights_only-loadable state, JSON config
    state = torch.load(path / "training_state.pt", weights_only=True)
    assert state["step"] == 3 and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    assert json.loads((path / "config.json").read_text()) == CONFIG
    with safe_open(str(path / "model-G.safetensors"), "pt") as f:
        stored = set(f.keys())
    assert "head.weight" in stored and "tied.weight" not in stored  # the tied copy is stored once
    assert {"sn.weight_orig", "sn.weight_u", "sn.weight_v", "snp.parametrizations.weight.0._u"} <= stored
    assert read_checkpoint_config(path) == CONFIG
    assert read_checkpoint_info(path)["step"] == 3

    model2, opt2, sched2, scaler2 = make_objects(1)
    ema2 = Tiny()
    info = load_checkpoint(path, {"G": model2}, {"G": opt2}, {"G": sched2}, {"G": scaler2}, ema={"G": ema2})
    assert (info["step"], info["epoch"], info["config"], info["extra"]) == (3, 1, CONFIG, {"best": 0.25, "history": [1, 2]})
    assert_same_state(model, model2)
    assert_same_state(ema, ema2)
    assert model2.tied is model2.head
    for p, p2 in zip(model.parameters(), model2.parameters()):
        assert torch.equal(opt.state[p]["exp_avg"], opt2.state[p2]["exp_avg"])
        assert torch.equal(opt.state[p]["exp_avg_sq"], opt2.state[p2]["exp_avg_sq"])
    assert sched2.last_epoch == sched.last_epoch == 3 and sched2.get_last_lr() == sched.get_last_lr()
    assert scaler2.get_scale() == scaler.get_scale() and scaler2.state_dict() == scaler.state_dict()
    torch.testing.assert_close(read_model_state(path, "G")["tied.weight"], model.head.weight.detach(), rtol=0, atol=0)

    again = (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])
    assert torch.equal(after_save[0], again[0])
    assert np.array_equal(after_save[1], again[1]) and after_save[2] == again[2]


def test_rng_state_helpers_round_trip():
    random.gauss(0, 1)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    state = get_rng_state()
    first = (torch.randn(3), np.random.standard_normal(3), random.gauss(0, 1))
    set_rng_state(state)
    second = (torch.randn(3), np.random.standard_normal(3), random.gauss(0, 1))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_resume_continues_bit_identically(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    train_steps(model, opt, sched, scaler, 3)
    save(tmp_path / "last", model, opt, sched, scaler)
    train_steps(model, opt, sched, scaler, 3)

    resumed = make_objects(123)  # different initial weights, different RNG position
    load_checkpoint(tmp_path / "last", {"G": resumed[0]}, {"G": resumed[1]}, {"G": resumed[2]}, {"G": resumed[3]})
    train_steps(*resumed, 3)
    assert_same_state(model, resumed[0])
    assert sched.get_last_lr() == resumed[2].get_last_lr()
    assert scaler.get_scale() == resumed[3].get_scale()


def test_data_parallel_wrapper_is_unwrapped(tmp_path):
    model = Tiny()
    save_checkpoint(tmp_path / "c", models={"G": nn.DataParallel(model)})
    with safe_open(str(tmp_path / "c" / "model-G.safetensors"), "pt") as f:
        assert not any(k.startswith("module.") for k in f.keys())
    fresh = Tiny()
    load_checkpoint(tmp_path / "c", {"G": fresh}, restore_rng=False)
    assert_same_state(model, fresh)


def _fail_on_call(monkeypatch, target_name: str, module, when, exc=OSError):
    """Make ``module.<target_name>`` raise when ``when(*args)`` holds."""
    real = getattr(module, target_name)

    def wrapper(*args, **kwargs):
        if when(*args):
            raise exc("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, target_name, wrapper)


def _renames(src_prefix: str):
    """Selects the os.replace that moves a folder whose name starts with ``src_prefix``."""
    return lambda src, dst: os.path.basename(src).startswith(src_prefix)


@pytest.mark.parametrize("failure", ["rename-old-away", "rename-new-in", "weights-write", "state-write"])
def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch, failure):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler, step=3)
    before = copy.deepcopy(model.state_dict())
    train_steps(model, opt, sched, scaler, 2)

    with monkeypatch.context() as m:
        if failure == "rename-old-away":  # the existing checkpoint moved aside
            _fail_on_call(m, "replace", os, lambda src, dst: os.path.basename(src) == "last")
        elif failure == "rename-new-in":  # the new one moved into place
            _fail_on_call(m, "replace", os, _renames(".last.tmp-"))
        elif failure == "weights-write":
            _fail_on_call(m, "_save_weights", ckpt, lambda *args: True)
        else:
            _fail_on_call(m, "save", torch, lambda *args: True)
        with pytest.raises(OSError, match="simulated"):
            save(path, model, opt, sched, scaler, step=5)

    assert leftovers(path) == []
    fresh = Tiny()
    info = load_checkpoint(path, {"G": fresh}, restore_rng=False)
    assert info["step"] == 3
    for k, v in before.items():
        assert torch.equal(fresh.state_dict()[k], v), k


class HardKill(BaseException):
    """A crash that runs no recovery code (the process is gone)."""


def test_kill_between_renames_falls_back_and_next_save_repairs(tmp_path, monkeypatch):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler, step=3)
    with monkeypatch.context() as m:
        m.setattr(ckpt, "_recover", lambda target: None)
        _fail_on_call(m, "replace", os, _renames(".last.tmp-"), exc=HardKill)
        with pytest.raises(HardKill):
            save(path, model, opt, sched, scaler, step=5)
    assert not path.exists() and any(name.startswith(".last.old-") for name in leftovers(path))

    with pytest.warns(UserWarning, match="interrupted save"):
        assert load_checkpoint(path, {"G": Tiny()}, restore_rng=False)["step"] == 3
        assert read_checkpoint_config(path) == CONFIG
    save(path, model, opt, sched, scaler, step=7)
    assert leftovers(path) == [] and read_checkpoint_info(path)["step"] == 7


PAYLOAD_RAN = []


def _payload_action():
    PAYLOAD_RAN.append(True)


class Payload:
    def __reduce__(self):
        return (_payload_action, ())


def test_state_file_with_pickle_payload_is_refused(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler)
    state = torch.load(path / "training_state.pt", weights_only=True)
    state["extra"] = {"note": Payload()}
    torch.save(state, path / "training_state.pt")

    fresh = Tiny()
    untouched = copy.deepcopy(fresh.state_dict())
    with pytest.raises(SPGNetError, match=r"training_state\.pt.*refusing"):
        load_checkpoint(path, {"G": fresh})
    assert PAYLOAD_RAN == []
    assert_same_state(fresh, _with_state(untouched))  # nothing was loaded


def _with_state(state) -> nn.Module:
    m = Tiny()
    m.load_state_dict(state)
    return m


def test_key_mismatch_is_an_error_naming_the_keys(tmp_path):
    model = Tiny()
    save_checkpoint(tmp_path / "c", models={"G": model}, config_dict=CONFIG)
    bigger = Tiny(extra_layer=True)
    with pytest.raises(SPGNetError, match=r"model-G\.safetensors.*missing 2 key\(s\): more\.bias, more\.weight"):
        load_checkpoint(tmp_path / "c", {"G": bigger}, restore_rng=False)
    save_checkpoint(tmp_path / "d", models={"G": bigger})
    with pytest.raises(SPGNetError, match=r"unexpected 2 key\(s\): more\.bias, more\.weight"):
        load_checkpoint(tmp_path / "d", {"G": Tiny()}, restore_rng=False)
    with pytest.warns(UserWarning, match="more.weight"):
        load_checkpoint(tmp_path / "c", {"G": bigger}, restore_rng=False, strict=False)
    assert torch.equal(bigger.conv.weight, model.conv.weight)


def test_missing_parts_and_bad_inputs_are_reported(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler)
    with pytest.raises(SPGNetError, match="no model 'D'"):
        load_checkpoint(path, {"D": Tiny()})
    with pytest.raises(SPGNetError, match="no optimizer 'D'"):
        load_checkpoint(path, {"G": Tiny()}, optimizers={"D": opt})
    with pytest.raises(SPGNetError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent", {"G": Tiny()})
    (path / "model-G.safetensors").unlink()
    assert read_checkpoint_config(path) == CONFIG  # the config never needs the weights

    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "todo.txt").write_text("keep me")
    with pytest.raises(SPGNetError, match="not an spgnet checkpoint; refusing"):
        save_checkpoint(stranger, models={"G": model})
    assert (stranger / "todo.txt").read_text() == "keep me"

    with pytest.raises(TypeError, match=r"training state\['extra'\]\['fn'\]"):
        save_checkpoint(tmp_path / "e", models={"G": model}, extra={"fn": lambda: 0})
    assert not (tmp_path / "e").exists() and leftovers(tmp_path / "e") == []
