"""The training engine (spgnet.training): the three schemes of docs/design.md §1 update the
right networks, the GAN terms train the right side, exact resume after SIGKILL, DDP
replicas stay identical and shard the data, non-finite losses are skipped / stop the run.

Everything runs a tiny model (channels 4-8) on 12 synthetic train pairs at 64x44, one
torch thread per process (two cores, shared machine: more threads only spin).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import spgnet.training.trainer as trainer_mod
from spgnet.config import dump_config
from spgnet.training.losses import NonFiniteLossError
from spgnet.parsing import NUM_CLASSES
from spgnet.training.sampler import ResumableSampler
from spgnet.training.trainer import Trainer, straight_through_onehot
from spgnet.utils.weights import torch_load_plain

import helpers
from helpers import SIZE

TRAIN_PAIRS, TEST_PAIRS = 12, 4
STEPS_PER_EPOCH = TRAIN_PAIRS // 2  # batch 2, one process
# the GAN from the first epoch, a validation at every epoch end (it draws SEAN noise too)
TRAINING = ["train.losses.adversarial_start_epoch=1", "train.log_every=1", "train.val_every=1", "train.val_pairs=2"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def tiny_config(root: Path, *overrides: str):
    return helpers.tiny_config(root, *TRAINING, *overrides)


@pytest.fixture(scope="module")
def data_root(synthetic_dataset) -> Path:
    return synthetic_dataset(TRAIN_PAIRS, TEST_PAIRS, SIZE, 3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def restore_determinism():
    """``train.deterministic`` switches torch's global deterministic mode on: undo it."""
    flag = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(flag)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(module: torch.nn.Module, before: dict[str, torch.Tensor], params_only: bool = True) -> list[str]:
    names = {n for n, _ in module.named_parameters()} if params_only else set(before)
    now = module.state_dict()
    return sorted(n for n in names if not torch.equal(now[n], before[n]))


def first_batch(trainer: Trainer) -> dict:
    trainer.sampler.set_epoch(0)
    return next(iter(trainer._loader(trainer.train_set, sampler=trainer.sampler)))


def nets(trainer: Trainer) -> dict[str, torch.nn.Module]:
    return {"stage1": trainer.net.stage1, "generator": trainer.net.generator, "discriminator": trainer.discriminator}


# --------------------------------------------------------------------------- schemes


def test_straight_through_onehot_forward_is_argmax_backward_is_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 5, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, NUM_CLASSES, 5, 3, dtype=torch.float64)
    st = straight_through_onehot(logits)
    labels = logits.detach().argmax(1)
    hand_onehot = torch.zeros_like(upstream).scatter_(1, labels[:, None], 1.0)
    assert torch.allclose(st.detach().double(), hand_onehot, atol=1e-6)  # exactly one-hot up to rounding
    (st * upstream).sum().backward()
    # d/dz_j of sum_i g_i softmax_i = s_j (g_j - sum_i g_i s_i)  (hand-derived softmax Jacobian)
    s = logits.detach().softmax(1)
    expected = s * (upstream - (upstream * s).sum(1, keepdim=True))
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_parallel_trains_stage1_generator_and_discriminator(data_root, tmp_path):
    tr = Trainer(tiny_config(data_root), run_dir=tmp_path / "run", progress=False)
    before = {k: snapshot(m) for k, m in nets(tr).items()}
    result = tr.train_step(first_batch(tr))
    assert not result.skipped
    assert set(result.losses) == {"ce", "l1", "gan_g", "gan_d"}
    assert all(map(torch.isfinite, map(torch.tensor, result.losses.values())))
    for name, module in nets(tr).items():
        n_params = len(list(module.parameters()))
        assert len(changed(module, before[name])) > n_params // 2, name


def test_sequential_phase1_only_stage1_phase2_only_generator(data_root, tmp_path):
    tr = Trainer(tiny_config(data_root, "train.scheme=sequential", "train.stage1_epochs=1"),
                 run_dir=tmp_path / "run", progress=False)
    batch = first_batch(tr)
    # phase 1 (epoch 0): stage 1 alone, even though the GAN term is on from epoch 1
    before = {k: snapshot(m) for k, m in nets(tr).items()}
    result = tr.train_step(batch)
    assert set(result.losses) == {"ce"}
    assert changed(tr.net.stage1, before["stage1"])
    assert changed(tr.net.generator, before["generator"], params_only=False) == []
    assert changed(tr.discriminator, before["discriminator"], params_only=False) == []
    # phase 2 (epoch 1): stage 1 frozen (weights, BatchNorm statistics, no gradient)
    tr.epoch = 1
    before = {k: snapshot(m) for k, m in nets(tr).items()}
    result = tr.train_step(batch)
    assert set(result.losses) == {"l1", "gan_g", "gan_d"}
    assert changed(tr.net.stage1, before["stage1"], params_only=False) == []
    assert all(p.grad is None for p in tr.net.stage1.parameters())
    assert changed(tr.net.generator, before["generator"])
    assert changed(tr.discriminator, before["discriminator"])


@pytest.mark.parametrize("scheme", ["joint", "parallel"])
def test_image_loss_reaches_stage1_only_in_joint(data_root, tmp_path, scheme):
    """λ_ce = 0: stage 1 can only learn from the generator's image losses, through the
    straight-through one-hot of the joint scheme; the parallel scheme feeds stage 2 the
    ground-truth parsing, so there stage 1 must get exactly zero gradient."""
    tr = Trainer(tiny_config(data_root, f"train.scheme={scheme}", "train.losses.ce=0"),
                 run_dir=tmp_path / "run", progress=False)
    before = {k: snapshot(m) for k, m in nets(tr).items()}
    result = tr.train_step(first_batch(tr))
    assert not result.skipped and "ce" in result.losses
    grad_norm = sum(float(p.grad.abs().sum()) for p in tr.net.stage1.parameters() if p.grad is not None)
    stage1_moved = changed(tr.net.stage1, before["stage1"])
    if scheme == "joint":  # both stages train, stage 1 from the image losses alone
        assert grad_norm > 0 and len(stage1_moved) > len(list(tr.net.stage1.parameters())) // 2
    else:
        assert grad_norm == 0.0 and stage1_moved == []
    assert changed(tr.net.generator, before["generator"])


def test_generator_gan_term_puts_no_gradient_into_discriminator(data_root, tmp_path):
    """With the discriminator's own loss weighted 0, its weights must not move although
    the generator's adversarial term is on (Adam leaves a parameter with zero gradient
    exactly where it is)."""
    tr = Trainer(tiny_config(data_root, "train.losses.discriminator=0"), run_dir=tmp_path / "run", progress=False)
    before = snapshot(tr.discriminator)
    result = tr.train_step(first_batch(tr))
    assert "gan_g" in result.losses and "gan_d" in result.losses
    assert changed(tr.discriminator, before) == []
    assert all(float(p.grad.abs().max()) == 0.0 for p in tr.discriminator.parameters())


def test_adversarial_start_epoch_switches_discriminator_on(data_root, tmp_path):
    tr = Trainer(tiny_config(data_root, "train.losses.adversarial_start_epoch=2"), run_dir=tmp_path / "run",
                 progress=False)
    batch = first_batch(tr)
    before = snapshot(tr.discriminator)
    assert set(tr.train_step(batch).losses) == {"ce", "l1"}
    assert changed(tr.discriminator, before, params_only=False) == []
    tr.epoch = 1  # the 2nd epoch, 1-based as the official epoch_add_gan
    assert set(tr.train_step(batch).losses) == {"ce", "l1", "gan_g", "gan_d"}
    assert changed(tr.discriminator, before)


def test_sequential_fit_switches_phase_at_the_epoch(data_root, tmp_path):
    run = tmp_path / "run"
    steps = STEPS_PER_EPOCH + 2
    cfg = tiny_config(data_root, "train.scheme=sequential", "train.stage1_epochs=1", f"train.max_steps={steps}")
    Trainer(cfg, run_dir=run, progress=False).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    for r in train:
        assert ("ce" in r) == (r["epoch"] == 0) and ("l1" in r) == (r["epoch"] == 1), r
    # `best` was saved by the validation between the phases, `last` two steps later:
    # stage 1 is frozen in between, the generator is not
    best, last = run / "checkpoints" / "best", run / "checkpoints" / "last"
    for name, same in (("stage1", True), ("generator", False)):
        a, b = load_file(best / f"model-{name}.safetensors"), load_file(last / f"model-{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a) == same, name


def test_sequential_run_too_short_for_stage2_warns(data_root, tmp_path, capsys):
    """max_steps within stage 1's epochs: stage 2 never trains, and the run says so."""
    steps = STEPS_PER_EPOCH - 1
    cfg = tiny_config(data_root, "train.scheme=sequential", "train.stage1_epochs=1", f"train.max_steps={steps}")
    Trainer(cfg, run_dir=tmp_path / "short", progress=False).fit()
    err = capsys.readouterr().err
    assert f"stage 2 only after train.stage1_epochs=1 epochs (step {STEPS_PER_EPOCH})" in err
    assert "stage 2 will not train" in (tmp_path / "short" / "log.txt").read_text()
    cfg = tiny_config(data_root, "train.scheme=sequential", "train.stage1_epochs=1", f"train.max_steps={steps + 3}")
    Trainer(cfg, run_dir=tmp_path / "long", progress=False).fit()
    assert "stage 2 will not train" not in capsys.readouterr().err


def test_image_logging_does_not_change_training(data_root, tmp_path):
    """Image grids every step vs never: the same weights and BatchNorm statistics."""
    runs = {}
    for every in (0, 1):
        runs[every] = tmp_path / f"img{every}"
        cfg = tiny_config(data_root, "train.max_steps=2", "train.val_every=0", f"train.image_every={every}")
        Trainer(cfg, run_dir=runs[every], progress=False).fit()
    assert_same_checkpoint(runs[0] / "checkpoints" / "last", runs[1] / "checkpoints" / "last")


# --------------------------------------------------------------------------- non-finite losses


def nan_l1_on_calls(monkeypatch, calls):
    """Make the trainer's L1 loss NaN on the given (0-based) call numbers."""
    real, count = trainer_mod.l1, [0]

    def l1(a, b):
        value = real(a, b)
        count[0] += 1
        return value * float("nan") if (calls is None or count[0] - 1 in calls) else value

    monkeypatch.setattr(trainer_mod, "l1", l1)


def test_nonfinite_step_is_skipped_logged_and_training_goes_on(data_root, tmp_path, monkeypatch):
    cfg = tiny_config(data_root, "train.max_steps=3", "train.val_every=0")
    tr = Trainer(cfg, run_dir=tmp_path / "one", progress=False)
    nan_l1_on_calls(monkeypatch, {0})
    before = {k: snapshot(m) for k, m in nets(tr).items()}
    result = tr.train_step(first_batch(tr))
    assert result.skipped and tr.nonfinite_streak == 1
    for name, module in nets(tr).items():
        assert changed(module, before[name]) == [], name  # no optimizer moved

    run = tmp_path / "run"
    tr = Trainer(cfg, run_dir=run, progress=False)
    nan_l1_on_calls(monkeypatch, {0})  # the first step of the loop
    tr.fit()
    assert tr.step == 3 and tr.nonfinite_streak == 0
    log = (run / "log.txt").read_text()
    assert "step 1: non-finite loss (ce=" in log and "l1=nan" in log and "step skipped" in log
    kinds = [(r["kind"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert kinds == [("nonfinite", 1), ("train", 2), ("train", 3)]


def test_nonfinite_every_step_stops_after_max_nonfinite(data_root, tmp_path, monkeypatch):
    tr = Trainer(tiny_config(data_root, "train.max_steps=10", "train.max_nonfinite=3"), run_dir=tmp_path / "run",
                 progress=False)
    nan_l1_on_calls(monkeypatch, None)
    with pytest.raises(NonFiniteLossError, match=r"3 non-finite losses in a row \(last at step 3: .*l1=nan"):
        tr.fit()
    assert tr.step == 2  # the third step raised before being counted


def test_infinite_loss_weight_is_caught_in_the_total(data_root, tmp_path):
    # weights must be finite (the config refuses .inf), but 3e38 x CE (~3 at the start)
    # overflows float32: every single loss is finite, their weighted sum is not
    tr = Trainer(tiny_config(data_root, "train.losses.ce=3e38"), run_dir=tmp_path / "run", progress=False)
    result = tr.train_step(first_batch(tr))
    assert result.skipped


def test_nonfinite_activations_stop_at_once(data_root, tmp_path):
    """A NaN input poisons BatchNorm running statistics in the forward pass already:
    skipping the step is not enough, training stops and names the buffers."""
    tr = Trainer(tiny_config(data_root), run_dir=tmp_path / "run", progress=False)
    batch = first_batch(tr)
    batch["src_image"] = batch["src_image"].clone()
    batch["src_image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"running statistics non-finite \(generator\."):
        tr.train_step(batch)


# --------------------------------------------------------------------------- exact resume


def test_sampler_shards_are_disjoint_and_resume_mid_epoch():
    data = list(range(11))
    shards = []
    for rank in (0, 1):
        s = ResumableSampler(data, num_replicas=2, rank=rank, seed=5, flips=True)
        s.set_epoch(3)
        full = list(s)
        assert len(full) == len(s) == 5 and all(isinstance(f, bool) for _, f in full)
        s.set_epoch(3, start=2)
        assert list(s) == full[2:] and len(s) == 3
        shards.append({i for i, _ in full})
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == 10  # drop_last: 11 pairs -> 5 per rank


def read_json_retry(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # between the two renames of a save
        return None


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Bit-identical models (every tensor) and optimizer states."""
    for name in ("stage1", "generator", "discriminator"):
        wa, wb = load_file(a / f"model-{name}.safetensors"), load_file(b / f"model-{name}.safetensors")
        assert wa.keys() == wb.keys()
        different = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert different == [], f"{name}: {different[:5]}"
    sa, sb = torch_load_plain(a / "training_state.pt"), torch_load_plain(b / "training_state.pt")
    for opt in sa["optimizers"]:
        for pid, st in sa["optimizers"][opt]["state"].items():
            for key, value in st.items():
                assert torch.equal(value, sb["optimizers"][opt]["state"][pid][key]), (opt, pid, key)
    assert sa["step"] == sb["step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(data_root, tmp_path):
    """Reference: one uninterrupted run (in this process, workers=0). Killed run: a
    ``spgnet train`` process with a loader worker (workers=1), SIGKILLed mid-epoch;
    resumed with workers=0. hflip on (flips drawn by the sampler), the GAN on, a
    validation (which draws SEAN noise) at the epoch boundary crossed after the resume."""
    steps = STEPS_PER_EPOCH + 3
    common = ["train.deterministic=true", "train.save_every=1", "data.hflip=true", f"train.max_steps={steps}"]
    Trainer(tiny_config(data_root, *common), run_dir=tmp_path / "ref", progress=False).fit()

    config = tmp_path / "tiny.yaml"
    config.write_text(dump_config(tiny_config(data_root, *common)))
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "spgnet", "train", "--config", str(config), "--run-dir", str(run), "--no-progress"]
    proc = subprocess.Popen([*cmd, "--set", "train.workers=1"], env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    meta = run / "checkpoints" / "last" / "checkpoint.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            info = read_json_retry(meta) if meta.exists() else None
            if info and info["step"] >= 2:
                proc.send_signal(signal.SIGSTOP)  # freeze it where it is, then kill
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    state = torch_load_plain(run / "checkpoints" / "last" / "training_state.pt")
    extra = state["extra"]
    assert extra["epoch"] == 0 and 0 < extra["epoch_step"] < STEPS_PER_EPOCH, extra  # killed mid-epoch

    done = subprocess.run([*cmd, "--resume", "--set", "train.workers=0"], env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {run / 'checkpoints' / 'last'} at step {extra['step']}" in (run / "log.txt").read_text()
    assert_same_checkpoint(tmp_path / "ref" / "checkpoints" / "last", run / "checkpoints" / "last")


def test_resume_does_not_train_past_max_steps(data_root, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(data_root, "train.max_steps=2", "train.val_every=0")
    Trainer(cfg, run_dir=run, progress=False).fit()
    before = load_file(run / "checkpoints" / "last" / "model-generator.safetensors")
    tr = Trainer(cfg, run_dir=run, resume=True, progress=False)
    tr.fit()
    assert tr.step == 2
    after = load_file(run / "checkpoints" / "last" / "model-generator.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- DDP

# torchrun entry point: `spgnet train`, with the L1 loss made NaN on rank 1 only at global
# step NAN_STEP (a step every rank must then skip, or rank 0 would wait forever in the
# gradient all-reduce).
DDP_DRIVER = textwrap.dedent("""
    import os, sys
    import spgnet.training.trainer as T
    from spgnet.cli import main

    NAN_STEP = int(os.environ["NAN_STEP"])
    real_step, real_l1 = T.Trainer.train_step, T.l1

    def train_step(self, batch):
        if self.step + 1 == NAN_STEP and self.dist.rank == 1:
            T.l1 = lambda a, b: real_l1(a, b) * float("nan")
        try:
            return real_step(self, batch)
        finally:
            T.l1 = real_l1

    T.Trainer.train_step = train_step
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_ddp_two_processes_identical_replicas_disjoint_shards_exact_resume(data_root, tmp_path):
    """gloo, 2 CPU processes, batch 2 each: 3 steps per epoch; 4 steps cross an epoch
    (and a validation). Checks: parameters identical on both ranks (per-rank digests),
    each epoch's samples split disjointly over the ranks, one writer of checkpoints and
    logs, a NaN on one rank skips the step everywhere, and a run stopped at step 2 and
    resumed to step 4 ends bit-identical to the uninterrupted one on both ranks."""
    driver = tmp_path / "ddp_driver.py"
    driver.write_text(DDP_DRIVER)
    config = tmp_path / "tiny.yaml"
    config.write_text(dump_config(tiny_config(data_root, "train.debug_rank_digest=true", "data.hflip=true",
                                               "train.val_pairs=3")))  # shards of 2 and 1 pairs
    env = {**SUBPROCESS_ENV, "NAN_STEP": "2"}

    def torchrun(run: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(driver),
               "train", "--config", str(config), "--run-dir", str(run), "--no-progress", *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    def digests(run: Path) -> list[dict]:
        return [json.loads((run / f"rank{r}_digest.json").read_text()) for r in (0, 1)]

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    torchrun(full, "--set", "train.max_steps=4")
    torchrun(resumed, "--set", "train.max_steps=2")
    torchrun(resumed, "--resume", "--set", "train.max_steps=4")

    d0, d1 = digests(full)
    assert d0["world_size"] == 2 and d0["step"] == d1["step"] == 4
    assert d0["parameters"] == d1["parameters"]
    with open(data_root / "pairs-train.csv", newline="") as f:
        pairs = {f"{Path(a).stem}___{Path(b).stem}" for a, b in list(csv.reader(f))[1:]}
    for epoch in (0, 1):
        seen = [[name for e, name in d["seen"] if e == epoch] for d in (d0, d1)]
        assert not set(seen[0]) & set(seen[1])
        assert len(seen[0]) == len(set(seen[0])) == len(seen[1])
    assert {name for d in (d0, d1) for e, name in d["seen"] if e == 0} == pairs  # 12 pairs, 6 per rank

    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["best", "last"]  # no stray copies
    assert json.loads((full / "checkpoints" / "last" / "checkpoint.json").read_text())["step"] == 4
    log = (full / "log.txt").read_text()
    assert log.count("training tiny:") == 1 and "step 2: non-finite loss on another process" in log
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 3, 4]
    assert [r["step"] for r in records if r["kind"] == "nonfinite"] == [2]

    for rank, (a, b) in enumerate(zip(digests(full), digests(resumed))):
        assert a["parameters"] == b["parameters"], f"rank {rank}: parameters differ after resume"
        assert a["buffers"] == b["buffers"], f"rank {rank}: buffers differ after resume"
