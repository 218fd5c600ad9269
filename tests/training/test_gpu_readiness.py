"""What the first GPU session relies on, checked on the CPU: host syncs per training step
within a budget, train.deterministic's flags per device, train.sync_bn's one line where
torch has no SyncBatchNorm (the CPU), and persistent loader workers that keep the order of
every epoch.

Host syncs are counted where a GPU would make them: ops that read device memory on the
host (``aten._local_scalar_dense``: ``.item()``, ``bool()``, ``int()``, ``float()``), ops
whose output size depends on the data (``nonzero``, ``masked_select``, ``unique``,
boolean indexing, ``repeat_interleave`` without a size) and the Python reads that copy a
tensor to the host without dispatching an op (``tolist``, ``numpy``, ``cpu``). CPU
tensors dispatch all of them too. Excluded: the optimizers' step counters, which torch
keeps on the CPU on every device (Adam without ``capturable``/``fused``), so reading them
never waits for a GPU."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import spgnet.training.trainer as trainer_mod
from spgnet import SPGNetError
from spgnet.cli import main
from spgnet.config import dump_config
from spgnet.training.distributed import DistInfo
from spgnet.training.sampler import ResumableSampler
from spgnet.training.trainer import StepResult, Trainer, check_sync_bn, configure_determinism

import helpers

pytestmark = pytest.mark.usefixtures("one_thread")

A = torch.ops.aten
SYNC_OPS = {A._local_scalar_dense.default, A.nonzero.default, A.is_nonzero.default, A.masked_select.default,
            A.equal.default, A._unique2.default, A.unique_dim.default, A.unique_consecutive.default,
            A.repeat_interleave.Tensor}
INDEX_OPS = {A.index.Tensor, A.index_put.default, A.index_put_.default, A._index_put_impl_.default}
HOST_READS = {"tolist", "numpy", "cpu"}  # no op dispatched: counted at the Python level


def _where() -> str:
    frames = [f for f in traceback.extract_stack() if f"{os.sep}spgnet{os.sep}" in f.filename]
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "outside spgnet"


class SyncCounter:
    """Counts host syncs (see the module docstring) by where they happen; ``exclude``:
    tensors whose reads are not syncs (CPU-resident on every device)."""

    def __init__(self, exclude=()):
        self.exclude = {id(t) for t in exclude}
        self.hits: collections.Counter = collections.Counter()
        counter = self

        class Dispatch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                sync = func in SYNC_OPS and not (args and id(args[0]) in counter.exclude)
                if func in INDEX_OPS:
                    sync = any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
                if sync:
                    counter.hits[f"{func} at {_where()}"] += 1
                return func(*args, **(kwargs or {}))

        class Function(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                if name in HOST_READS and args and isinstance(args[0], torch.Tensor) and id(args[0]) not in counter.exclude:
                    counter.hits[f"{name} at {_where()}"] += 1
                return func(*args, **(kwargs or {}))

        self._modes = (Function(), Dispatch())

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def __enter__(self):
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self._modes):
            mode.__exit__(*exc)


def test_the_counter_sees_every_kind_of_sync():
    x = torch.arange(6.0)
    with SyncCounter() as c:
        float(x[1]), bool(x[2] > 1), x.nonzero(), x[x > 2], x.tolist(), x.sum().item(), x.numpy(), x.cpu()
        x.unique(), torch.nonzero_static(x, size=3), x.amax()  # the last two: no sync
    assert c.total == 9, c.hits
    with SyncCounter(exclude=[x]) as c:
        x.tolist()
    assert c.total == 0


@pytest.fixture(scope="module")
def step_trainer(tmp_path_factory, tiny_dataset):
    """A tiny trainer with the GAN on (stage 1, G and D all step) and its first batch."""
    cfg = helpers.tiny_config(tiny_dataset, "train.losses.adversarial_start_epoch=1", "train.losses.adversarial=0.01",
                              "train.val_every=0", "train.log_every=1")
    trainer = Trainer(cfg, run_dir=tmp_path_factory.mktemp("syncs") / "run", progress=False)
    batch = next(iter(trainer._loader(trainer.train_set)))
    yield trainer, batch
    trainer.close()


# Budget per training step (not only when not logging: the logged values are the ones this
# read brought): 1 read of all losses and their finiteness (Trainer._read_losses) + 1 read of
# the ACE look-up sizes for the whole generator forward (SemanticCondition, look-up routes).
# Before: 15 on the lookup route, 19 on the shell and the CPU's default route, 10 on conv.
BUDGET = {None: 2, "lookup": 2, "shell": 2, "conv": 1}


@pytest.mark.parametrize("route", list(BUDGET), ids=lambda r: r or "auto")
def test_training_step_host_syncs_within_budget(step_trainer, route):
    trainer, batch = step_trainer
    trainer.net.generator.ace_route = route
    trainer.train_step(batch)  # optimizer state exists from here on
    steps = [s["step"] for opt in trainer.optimizers.values() for s in opt.state.values()]
    assert all(t.device.type == "cpu" for t in steps)  # what the exclusion relies on
    with SyncCounter(exclude=steps) as counter:
        result = trainer.train_step(batch)
    assert not result.skipped and {"ce", "l1", "gan_g", "gan_d"} == set(result.losses)
    assert all(type(v) is float for v in result.losses.values())  # logging reads nothing more
    assert counter.total <= BUDGET[route], dict(counter.hits)
    assert sum(v for k, v in counter.hits.items() if "trainer.py" in k) == 1, dict(counter.hits)


def test_a_nonfinite_discriminator_loss_skips_the_whole_step(step_trainer, monkeypatch):
    """One read for the whole step: a non-finite D loss now skips G's update too (no network moves)."""
    trainer, batch = step_trainer
    trainer.net.generator.ace_route = None
    real = trainer.gan_loss.forward

    def gan(prediction, target_is_real, for_discriminator=True):
        value = real(prediction, target_is_real, for_discriminator=for_discriminator)
        return value * float("nan") if for_discriminator else value

    monkeypatch.setattr(trainer.gan_loss, "forward", gan)
    before = {name: [p.detach().clone() for p in m.parameters()]
              for name, m in (("stage1", trainer.net.stage1), ("generator", trainer.net.generator),
                              ("discriminator", trainer.discriminator))}
    result = trainer.train_step(batch)
    assert result.skipped and result.losses["gan_d"] != result.losses["gan_d"]  # NaN
    for name, module in (("stage1", trainer.net.stage1), ("generator", trainer.net.generator),
                         ("discriminator", trainer.discriminator)):
        assert all(torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
    assert all(p.grad is None for p in trainer.net.parameters())  # gradients dropped
    trainer.nonfinite_streak = 0


# --------------------------------------------------------------------------- train.deterministic


@pytest.fixture()
def restore_determinism():
    state = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = state[2], state[3]


def test_deterministic_on_cuda_warns_where_no_kernel_exists(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_determinism(True, "cuda")
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
    configure_determinism(True, "cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_deterministic_on_cpu_raises_where_no_kernel_exists(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_determinism(True, "cpu")
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    configure_determinism(False, "cuda")
    assert torch.backends.cudnn.benchmark


# --------------------------------------------------------------------------- train.sync_bn


def test_sync_bn_needs_cuda_one_line(tiny_dataset, tmp_path, monkeypatch, capsys):
    check_sync_bn(True, True, torch.device("cuda", 0))  # fine
    check_sync_bn(True, False, torch.device("cpu"))  # one process: nothing to synchronise
    check_sync_bn(False, True, torch.device("cpu"))
    with pytest.raises(SPGNetError, match=r"^train.sync_bn=true needs CUDA: torch's SyncBatchNorm has no CPU"):
        check_sync_bn(True, True, torch.device("cpu"))
    # at the trainer's start, as rank 0 of 2 processes would see it: before any file is written
    monkeypatch.setattr(trainer_mod, "init_distributed",
                        lambda device: DistInfo(rank=0, world_size=2, local_rank=0, device=torch.device("cpu")))
    config = tmp_path / "tiny.yaml"
    config.write_text(dump_config(helpers.tiny_config(tiny_dataset)))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--run-dir", str(run), "--no-progress",
                 "--set", "train.sync_bn=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.sync_bn=true needs CUDA" in err and "set train.sync_bn=false" in err
    assert not run.exists()


def test_torch_syncbatchnorm_has_no_cpu_implementation(tmp_path):
    """What the check above relies on, with a real gloo process group: if a torch version
    runs SyncBatchNorm on the CPU, this fails and the check can go."""
    import torch.distributed as dist

    assert not dist.is_initialized()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        bn = torch.nn.SyncBatchNorm(3).train()
        with pytest.raises(ValueError, match="SyncBatchNorm expected input tensor to be on GPU"):
            bn(torch.randn(2, 3, 4, 4))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("variant", ["full", "baseline"])
def test_sync_bn_conversion_keeps_every_network_working(tiny_dataset, tmp_path, variant):
    """What train.sync_bn does to the networks under DDP, done here without a process group
    (where a SyncBatchNorm computes what the BatchNorm did): every BatchNorm converted, the
    baselines' BatchNormNoCondition keeping its three-argument call (torch's own conversion
    broke it), and one training step bit-identical to the unconverted networks'."""
    from spgnet.models.sean import BatchNormNoCondition
    from spgnet.training.distributed import SyncBatchNormNoCondition, convert_sync_batchnorm

    cfg = helpers.tiny_config(tiny_dataset, f"model.generator.variant={variant}", "train.val_every=0",
                              "train.losses.adversarial_start_epoch=1", "train.losses.adversarial=0.01")
    results = []
    for sync in (False, True):
        trainer = Trainer(cfg, run_dir=tmp_path / f"run{int(sync)}", progress=False)
        plain = sum(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.models()["generator"].modules())
        if sync:
            keys = {k: list(m.state_dict()) for k, m in trainer.models().items()}
            for module in (trainer.net, trainer.discriminator):
                assert convert_sync_batchnorm(module) is module
            assert keys == {k: list(m.state_dict()) for k, m in trainer.models().items()}
            modules = list(trainer.net.modules()) + list(trainer.discriminator.modules())
            assert not any(isinstance(m, (torch.nn.BatchNorm2d, BatchNormNoCondition)) for m in modules)
            synced = [m for m in modules if isinstance(m, torch.nn.SyncBatchNorm)]
            assert len(synced) >= plain > 0
            assert any(isinstance(m, SyncBatchNormNoCondition) for m in synced) == (variant == "baseline")
        result = trainer.train_step(next(iter(trainer._loader(trainer.train_set))))
        results.append((result.losses, {k: v.clone() for k, v in trainer.net.state_dict().items()}))
        trainer.close()
    (losses, state), (sync_losses, sync_state) = results
    assert losses == sync_losses
    assert state.keys() == sync_state.keys() and all(torch.equal(state[k], sync_state[k]) for k in state)


@pytest.mark.slow
def test_sync_bn_with_two_cpu_ranks_is_one_line(tiny_dataset, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(dump_config(helpers.tiny_config(tiny_dataset)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "spgnet", "train", "--config", str(config), "--run-dir", str(tmp_path / "run"),
                           "--no-progress", "--set", "train.sync_bn=true"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "train.sync_bn=true needs CUDA" in line]
    # one line from each rank that printed before torchrun stopped the other (both, as a rule)
    assert 1 <= len(lines) <= 2, done.stderr[-3000:]
    assert all(line.startswith("spgnet train: error: train.sync_bn=true") for line in lines), lines
    # (torchrun then prints its own summary of the failed ranks, with its traceback)
    assert "internal error" not in done.stderr and "SyncBatchNorm expected input" not in done.stderr


# --------------------------------------------------------------------------- persistent loader workers


def test_persistent_workers_keep_every_epochs_order(synthetic_dataset, tmp_path, monkeypatch):
    """3 epochs with 2 loader workers: the samples of each epoch in the order the sampler
    gives for that epoch (as fresh per-epoch loaders gave them), from the same two worker
    processes throughout, which end when training does."""
    root = synthetic_dataset(8, 2, helpers.SIZE, 5)
    cfg = helpers.tiny_config(root, "train.workers=2", "train.epochs=3", "train.val_every=0", "data.hflip=true",
                              "train.precise_bn_batches=0", "train.debug_rank_digest=true")
    workers_seen = []

    def train_step(self, batch):  # loading only: the order and the workers are under test
        workers_seen.append(tuple(self._train_loader._iterator._workers))
        return StepResult({"l1": 0.0})

    monkeypatch.setattr(Trainer, "train_step", train_step)
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    trainer.fit()

    expected = []
    for epoch in range(3):
        sampler = ResumableSampler(trainer.train_set, shuffle=True, seed=cfg.train.seed, drop_last=True, flips=True)
        sampler.set_epoch(epoch)
        expected += [[epoch, trainer.train_set[i]["pair_name"]] for i, _ in sampler]
    assert trainer._seen == expected
    assert len({tuple(e[1] for e in expected[k:k + 8]) for k in (0, 8, 16)}) == 3  # a new order every epoch
    assert len(workers_seen) == 12 and len(set(workers_seen)) == 1 and len(workers_seen[0]) == 2
    assert trainer._train_loader is None and not any(w.is_alive() for w in workers_seen[0])
