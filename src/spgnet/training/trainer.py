"""The trainer: three schemes of docs/design.md §1, losses of §9, the guarantees of §13.

Schemes (``train.scheme``):

* ``parallel`` — S1‖S2, the paper's best. Both stages train at the same time; stage 2
  is fed the *ground-truth* target parsing (and the flow computed from it), stage 1
  learns to predict that parsing. At inference stage 2 gets stage 1's prediction.
* ``sequential`` — S1▷S2. For ``stage1_epochs`` only stage 1 trains; then it is frozen
  and stage 2 trains on its (argmax) predictions.
* ``joint`` — S1⋈S2. End to end: stage 2 gets a straight-through one-hot of stage 1's
  softmax (forward = argmax one-hot, backward = softmax gradient), so the image losses
  reach stage 1 too; the stage-1 CE still applies.

One optimizer step updates stage 1 (Adam, ``lr_stage1``), the generator (``lr_g``) and,
once the adversarial term is on, the discriminator (``lr_d``; the generator's GAN term
sees a frozen D, so it puts no gradient there). The learning rates are halved when the
validation reconstruction (L1) loss stops improving.

Guarantees (docs/design.md §13): a checkpoint holds everything a resume needs — weights,
optimizers, schedulers, scaler, the position inside the epoch (the sampler skips what
was consumed; flips are drawn by the sampler), and the RNG states, under DDP every
rank's — so a run killed at any point and resumed ends bit-identical to an
uninterrupted one (deterministic mode; on the CPU — on CUDA a few ops have no
deterministic kernel, :func:`configure_determinism`). A step with a non-finite loss on
any rank (stage 1, generator or discriminator) is skipped on every rank — no network is
updated — and logged; ``max_nonfinite`` in a row, or non-finite BatchNorm statistics,
stop the run with :class:`~spgnet.training.losses.NonFiniteLossError`.

Host syncs: a step reads the device once, for all its losses and their finiteness
(:meth:`Trainer._read_losses`); the generator's ACE layers once more on the look-up routes
(:class:`~spgnet.models.sean.SemanticCondition`); nothing else per step (the fp16
GradScaler adds its own inf check per optimizer). So the order within a step is: the
forward passes and backward of stage 1 and the generator, the discriminator's forward
and backward on the detached fake, the one read, then the optimizer steps.

Running on a cluster (docs/operations.md): the run directory has one writer, an
exclusive lock (:mod:`spgnet.training.lock`) taken before anything is written. Every file
the run's splits need is checked before the first step (:func:`spgnet.data.check.preflight`);
an error inside a loader worker is re-raised as its original one line
(:func:`spgnet.data.dataset.original_error`). SIGTERM, SIGINT and SIGUSR1 (what SLURM and
Kubernetes send before killing a job) let the current step finish, save ``last``, log it
and raise :class:`TrainingStopped` (``spgnet train`` exits with
:data:`EXIT_STOPPED`); ``--resume`` continues bit-identically. A second SIGINT stops at
once (the checkpoints on disk stay as they were). Any error that ends a run is written to
``log.txt`` too.

EMA (``train.ema_decay`` > 0; 0, the default, changes nothing): stage 1 and the generator
each get an exponential moving average of their weights (:mod:`spgnet.training.ema`),
updated after every optimizer step of that module that actually ran; validation scores
the averaged weights (after recalibrating their BatchNorm statistics), checkpoints store
them as ``ema-stage1`` / ``ema-generator`` and a resume restores them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from spgnet import SPGNetError
from spgnet.config import Config, config_to_dict, dump_config
from spgnet.data.dataset import PairDataset, complete_batch, original_error
from spgnet.utils.io import atomic_write_text
from spgnet.training.losses import GANLoss, NonFiniteLossError, VGG19Perceptual, l1, parsing_ce
from spgnet.parsing import NUM_CLASSES, colorize, one_hot
from spgnet.training.distributed import DistInfo, all_reduce_sum, barrier, convert_sync_batchnorm, init_distributed
from spgnet.training.ema import ModelEMA
from spgnet.training.lock import RunLock
from spgnet.training.logs import RunLogger, image_grid, next_run_dir
from spgnet.training.sampler import ResumableSampler
from spgnet.utils.torch_utils import frozen

# The signals that stop a run cleanly (SLURM: SIGUSR1 via --signal=USR1@T before the time
# limit, SIGTERM on scancel/preemption; Kubernetes: SIGTERM; a terminal: SIGINT).
STOP_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGINT", "SIGUSR1")
# `spgnet train`'s exit status after a stop signal: `last` saved, resume with --resume
# (EX_TEMPFAIL: "try again later"; docs/operations.md lists every exit status).
EXIT_STOPPED = 75


class TrainingStopped(SPGNetError):
    """A stop signal ended the run after its current step; ``last`` holds that step.
    Not a failure: the CLI prints it without "error:" and exits with :data:`EXIT_STOPPED`."""

    exit_code = EXIT_STOPPED
    cli_prefix = ""

    def __init__(self, message: str, signal_name: str = "", step: int = 0):
        super().__init__(message)
        self.signal_name, self.step = signal_name, step


def _ignore_stop_signals(_worker_id: int) -> None:
    """Loader workers ignore the stop signals: the main process decides when to stop
    (a worker killed by SLURM's SIGTERM would crash the step being finished)."""
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class _StopSignals:
    """While active (main thread only), a stop signal is recorded in :attr:`received`
    instead of killing the process; a second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signal.Signals(signum).name

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    sig = getattr(signal, name)
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


# Ops of a training step that have no deterministic CUDA kernel (torch raises under
# torch.use_deterministic_algorithms(True) without warn_only; the list is torch's own,
# see its docstring): on CUDA they stay nondeterministic with train.deterministic=true.
CUDA_NONDETERMINISTIC = (
    "grid_sample backward (the feature warp, spgnet.ops.warp)",
    "ReflectionPad2d backward (stage 1, the style encoder, the generator's output layer)",
    "2-D NLL loss (the parsing cross-entropy of stage 1)",
)


def configure_determinism(deterministic: bool, device_type: str) -> None:
    """``train.deterministic``. On: deterministic algorithms wherever torch has them, on
    every device. On the CPU every op of a step has one, so a missing one is an error
    (``warn_only=False``) and a run is bit-identical to a resumed one. On CUDA the ops of
    :data:`CUDA_NONDETERMINISTIC` have none: they warn instead of raising (``warn_only=True``),
    everything else is deterministic (cuDNN's deterministic algorithms, no cuDNN
    benchmarking, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` as cuBLAS needs, set unless already
    set — before the first cuBLAS call, which creates the handle). Off: cuDNN benchmarks
    its algorithms (CUDA)."""
    if deterministic:
        accelerator = device_type != "cpu"
        if accelerator:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=accelerator)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device_type == "cuda":
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int, deterministic: bool, device_type: str = "cpu") -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    configure_determinism(deterministic, device_type)


# Devices on which torch's SyncBatchNorm synchronises (its forward raises on the others).
SYNC_BN_DEVICES = ("cuda", "hpu", "xpu")


def check_sync_bn(sync_bn: bool, distributed: bool, device: torch.device) -> None:
    """``train.sync_bn`` under DDP needs a device torch's SyncBatchNorm runs on: a one-line
    error at the start instead of an internal error in the first forward."""
    if sync_bn and distributed and device.type not in SYNC_BN_DEVICES:
        raise SPGNetError(f"train.sync_bn=true needs CUDA: torch's SyncBatchNorm has no {device.type.upper()} "
                          f"implementation (this run is on {device}); set train.sync_bn=false")


def straight_through_onehot(logits: torch.Tensor) -> torch.Tensor:
    """Forward: one-hot of the argmax; backward: the softmax's gradient."""
    soft = logits.float().softmax(1)
    hard = one_hot(soft.argmax(1), NUM_CLASSES).to(soft.dtype)
    return hard + soft - soft.detach()


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (bit-exact comparison across processes)."""
    t = t.detach().cpu()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class StepResult:
    losses: dict[str, float]
    skipped: bool = False


class Trainer:
    """Builds everything from a :class:`Config`, trains, validates and checkpoints.

    ``Trainer(cfg, run_dir=None, resume=None)``: a new auto-numbered run directory under
    ``cfg.train.out_dir`` unless ``run_dir`` is given; ``resume`` is a checkpoint
    directory (or ``True`` for ``run_dir/checkpoints/last``).
    """

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: str | Path | bool | None = None,
                 progress: bool = True, init: str | Path | None = None):
        """``init``: a checkpoint whose models (any of stage1, generator, discriminator, flow)
        initialise the networks before training; weights only, no optimizer state or step
        (fine-tuning, e.g. from ``spgnet convert-official``: the generator and the official
        flow network come from it, stage 1 and the discriminator start from scratch).
        ``train.flow: official`` needs the flow network from ``init`` or ``resume``.

        The run directory is locked for this process until :meth:`fit` ends (or
        :meth:`close`); a second writer gets :class:`~spgnet.training.lock.RunLockedError`."""
        t = cfg.train
        if t.flow == "official" and not (init or resume):
            raise SPGNetError("train.flow=official trains with the official flow network's weights: start from a "
                              "checkpoint that holds them (spgnet train --init CKPT, e.g. a convert-official "
                              "checkpoint), or use train.flow=part-affine or file")
        self.cfg = cfg
        self.dist: DistInfo = init_distributed(t.device)
        self.device = self.dist.device
        check_sync_bn(t.sync_bn, self.dist.enabled, self.device)
        self.progress = progress and self.dist.is_main
        seed_everything(t.seed + self.dist.rank, t.deterministic, self.device.type)

        # run directory (rank 0 decides, everybody uses it)
        if run_dir is None and resume not in (None, False, True):
            run_dir = Path(resume).resolve().parents[1]
        if run_dir is None:
            run_dir = next_run_dir(t.out_dir, cfg.name) if self.dist.is_main else None
            if self.dist.enabled:
                holder = [str(run_dir) if run_dir else None]
                torch.distributed.broadcast_object_list(holder, src=0)
                run_dir = holder[0]
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.lock: RunLock | None = None
        self.log = RunLogger(self.run_dir, enabled=False)
        self.last_metrics: dict[str, dict[str, float]] = {}  # "val" / "train" -> the latest values
        self._saved_last: tuple[int, int, int] | None = None  # (step, epoch, epoch_step) of `last`
        try:
            if self.dist.is_main:  # one writer per run directory: the lock comes before any write
                self.lock = RunLock(self.run_dir).acquire()
                atomic_write_text(self.run_dir / "config.yaml", dump_config(cfg))
            self.log = RunLogger(self.run_dir, enabled=self.dist.is_main)
            if self.lock is not None and self.lock.stale is not None:
                self.log.text(self.lock.describe_stale())
            self._build(cfg, resume, init)
        except BaseException as exc:
            self._failed(exc)
            self.close()
            raise

    def _build(self, cfg: Config, resume, init) -> None:
        """Data, models, optimizers, losses, then the resume or initialisation (``__init__``)."""
        from spgnet.pipeline import SPGNet, build_discriminator

        t = cfg.train
        # data: every file the splits need, checked before anything is built (rank 0)
        flow_files = t.flow == "file"
        if self.dist.is_main:
            from spgnet.data.check import preflight

            preflight(cfg.data, "train", flow=flow_files)
            if t.val_every:
                preflight(cfg.data, "test", flow=flow_files, limit=t.val_pairs or None)
        self.train_set = PairDataset(cfg.data, "train", return_flow=flow_files)
        self.val_set = PairDataset(cfg.data, "test", return_flow=flow_files)
        if len(self.train_set) < t.batch_size * self.dist.world_size:
            raise SPGNetError(f"{cfg.data.root}: {len(self.train_set)} training pairs, fewer than one batch "
                              f"({t.batch_size} x {self.dist.world_size} processes)")
        if t.val_every and len(self.val_set) == 0:
            raise SPGNetError(f"{self.val_set.paths.pairs_file}: the test split has no pairs, so validation "
                              f"(train.val_every={t.val_every}) would score nothing; add test pairs, or set "
                              "train.val_every=0 to train without validation")
        self.sampler = ResumableSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                        shuffle=True, seed=t.seed, drop_last=True, flips=cfg.data.hflip)
        self.train_set.hflip = False  # flips come from the sampler (reproducible across resumes)

        # models
        self.net = SPGNet(cfg).to(self.device)
        self.discriminator = build_discriminator(cfg).to(self.device)
        if t.channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        if self.dist.enabled and t.sync_bn:
            self.net = convert_sync_batchnorm(self.net)
            self.discriminator = convert_sync_batchnorm(self.discriminator)
        # raw modules: self.net (SPGNet: .stage1, .generator) and self.discriminator; the
        # ddp_* names are the same modules wrapped in DDP under torchrun (the raw ones
        # otherwise), called for the forward passes whose gradients must be all-reduced
        self.ddp_stage1 = self._wrap(self.net.stage1)
        self.ddp_generator = self._wrap(self.net.generator)
        self.ddp_discriminator = self._wrap(self.discriminator)

        betas = tuple(t.betas)
        self.opt_s1 = torch.optim.Adam(self.net.stage1.parameters(), lr=t.lr_stage1, betas=betas)
        self.opt_g = torch.optim.Adam(self.net.generator.parameters(), lr=t.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=t.lr_d, betas=betas)
        self.optimizers = {"stage1": self.opt_s1, "generator": self.opt_g, "discriminator": self.opt_d}
        self.schedulers = {
            name: torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=t.plateau_factor, patience=t.plateau_patience, min_lr=t.min_lr)
            for name, opt in self.optimizers.items()
        }
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        # EMA copies of stage 1 and the generator (train.ema_decay > 0; none at 0). Each is
        # updated by a post-step hook of its module's optimizer, so exactly the steps that
        # ran count: a step skipped for a non-finite loss or by the fp16 GradScaler, and a
        # stage that the sequential scheme does not train, never call optimizer.step
        self.ema: dict[str, ModelEMA] = {}
        if t.ema_decay > 0:
            for name, opt in (("stage1", self.opt_s1), ("generator", self.opt_g)):
                module = getattr(self.net, name)
                self.ema[name] = ema = ModelEMA(module, t.ema_decay)
                opt.register_step_post_hook(lambda _opt, _args, _kwargs, ema=ema, module=module: ema.update(module))

        # losses
        w = t.losses
        self.perceptual = None
        if w.perceptual > 0:
            self.perceptual = VGG19Perceptual(weights_path=t.vgg_weights).to(self.device)
        self.gan_loss = GANLoss(t.gan_mode)

        self.step = 0
        self.epoch = 0
        self.epoch_step = 0  # batches already consumed in the current epoch
        self.best_ssim = -math.inf
        self.nonfinite_streak = 0
        self._bn_step = -1  # step of the last precise-BN pass
        self._seen: list[list] = []  # [epoch, pair name] of every training sample (debug_rank_digest)
        if resume:
            self.load(self.ckpt_dir / "last" if resume is True else Path(resume))
        elif init:
            self.initialize_from(Path(init))

    # ------------------------------------------------------------------ helpers
    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids, find_unused_parameters=False)

    def _autocast(self):
        if self.cfg.train.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.train.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _loader(self, dataset, sampler=None, batch_size=None, shuffle=False, persistent: bool = False):
        t = self.cfg.train
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size or t.batch_size, sampler=sampler, shuffle=shuffle,
            num_workers=t.workers, drop_last=sampler is not None, pin_memory=self.device.type == "cuda",
            persistent_workers=persistent and t.workers > 0,
            worker_init_fn=_ignore_stop_signals if t.workers else None,
            # its own generator: creating an iterator must not consume the global RNG,
            # or a resumed run would draw different noise than an uninterrupted one
            generator=torch.Generator().manual_seed(t.seed + 17 * self.epoch),
        )

    def train_loader(self) -> torch.utils.data.DataLoader:
        """The training loader, made once: its workers (``train.workers`` > 0) persist from
        epoch to epoch instead of restarting for each (they end with :meth:`close`). The
        order of an epoch stays the sampler's: the sampler runs in this process, where
        :meth:`ResumableSampler.set_epoch` sets it before each epoch's iterator; the workers
        only load the indices they are sent, and the training set draws no random numbers
        (its flips come from the sampler), so reused workers load exactly what new ones would."""
        if getattr(self, "_train_loader", None) is None:
            self._train_loader = self._loader(self.train_set, sampler=self.sampler, persistent=True)
        return self._train_loader

    def _close_train_loader(self) -> None:
        """End the persistent workers of :meth:`train_loader` now (not when garbage collected)."""
        loader, self._train_loader = getattr(self, "_train_loader", None), None
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def _batch(self, batch: dict) -> dict:
        b = complete_batch(batch, self.cfg.data, self.device)
        if self.cfg.train.channels_last:
            b = {k: v.contiguous(memory_format=torch.channels_last) if isinstance(v, torch.Tensor) and v.dim() == 4 else v
                 for k, v in b.items()}
        return b

    def adversarial_on(self) -> bool:
        return self.cfg.train.losses.adversarial_enabled(self.epoch)

    def stage1_trains(self) -> bool:
        t = self.cfg.train
        return not (t.scheme == "sequential" and self.epoch >= t.stage1_epochs)

    def stage2_trains(self) -> bool:
        t = self.cfg.train
        return not (t.scheme == "sequential" and self.epoch < t.stage1_epochs)

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: dict) -> StepResult:
        t = self.cfg.train
        w = t.losses
        b = self._batch(batch)
        train_s1, train_s2 = self.stage1_trains(), self.stage2_trains()
        adv = train_s2 and self.adversarial_on()
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.net.stage1.train(train_s1)
        self.net.generator.train(train_s2)
        losses: dict[str, torch.Tensor] = {}
        with self._autocast():
            s1_input = self.net.stage1_input(b)
            if train_s1:
                logits = self.ddp_stage1(s1_input, b["src_pose"], b["tgt_pose"])
                losses["ce"] = parsing_ce(logits, b["tgt_parsing"])
            elif train_s2:
                with torch.no_grad():
                    logits = self.net.stage1(s1_input, b["src_pose"], b["tgt_pose"])
            fake = None
            if train_s2:
                tgt_labels, tgt_onehot = self._stage2_target(b, logits)
                flow, vis = self.net.flow(b, tgt_labels)
                fake = self.ddp_generator(b["src_image"], b["src_parsing_onehot"], tgt_onehot, b["tgt_pose"], flow, vis)
                real = b["tgt_image"]
                losses["l1"] = l1(fake.float(), real.float())
                if self.perceptual is not None:
                    losses["perceptual"] = self.perceptual(fake.float(), real.float())
                if adv:
                    # D frozen and unwrapped: the generator's GAN term must put no gradient
                    # into D (pix2pix's set_requires_grad(D, False)) nor start a DDP reduction
                    with frozen(self.discriminator):
                        d_fake = self.discriminator(torch.cat([b["src_image"], fake, b["tgt_pose"]], 1))
                    losses["gan_g"] = self.gan_loss(d_fake, True, for_discriminator=False)
            total = (w.ce * losses.get("ce", 0.0) + w.l1 * losses.get("l1", 0.0)
                     + w.perceptual * losses.get("perceptual", 0.0) + w.adversarial * losses.get("gan_g", 0.0))
        self.scaler.scale(total).backward()

        if adv:  # discriminator on the detached fake (D's weights are the same before and after G's update)
            with self._autocast():
                d_real = self.ddp_discriminator(torch.cat([b["src_image"], b["tgt_image"], b["tgt_pose"]], 1))
                d_fake = self.ddp_discriminator(torch.cat([b["src_image"], fake.detach(), b["tgt_pose"]], 1))
                losses["gan_d"] = 0.5 * (self.gan_loss(d_real, True) + self.gan_loss(d_fake, False))
            self.scaler.scale(w.discriminator * losses["gan_d"]).backward()

        # the step's one host read: every loss, and whether all are finite on every rank
        finite, values = self._read_losses({**losses, "total": total})
        values.pop("total")
        if not finite:
            return self._skip(values)
        stepped = []
        if train_s1:
            stepped.append((self.opt_s1, self.net.stage1))
        if train_s2:
            stepped.append((self.opt_g, self.net.generator))
        if adv:
            stepped.append((self.opt_d, self.discriminator))
        for opt, module in stepped:
            self._clip(opt, module)
            self.scaler.step(opt)
        self.scaler.update()
        self.nonfinite_streak = 0
        self._last_images = (b, logits.detach(), None if fake is None else fake.detach())
        return StepResult(values)

    def _stage2_target(self, b: dict, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The target parsing stage 2 trains on: labels (B, H, W) and one-hot, per scheme."""
        scheme = self.cfg.train.scheme
        if scheme == "parallel":
            return b["tgt_parsing"], b["tgt_parsing_onehot"]
        if scheme == "sequential":
            labels = logits.argmax(1)
            return labels, one_hot(labels).to(b["src_image"].dtype)
        onehot = straight_through_onehot(logits)  # joint
        return onehot.detach().argmax(1), onehot

    def _read_losses(self, losses: dict[str, torch.Tensor]) -> tuple[bool, dict[str, float]]:
        """``(finite, values)``: whether every loss is finite on *every* rank (under DDP all
        ranks must skip the same steps) and this rank's values as floats — one stacked
        tensor, one device-to-host copy: the only host sync of a step the trainer makes
        (logging and the progress bar use these values, they read nothing more)."""
        values = torch.stack([torch.as_tensor(v, device=self.device).detach().float().reshape(())
                              for v in losses.values()])
        ok = torch.isfinite(values).all().float().reshape(1)
        if self.dist.enabled:
            torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
        read = torch.cat((ok, values)).tolist()
        return read[0] == 1.0, dict(zip(losses, read[1:]))

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` or-ed over ranks (every rank must take the same branch)."""
        if not self.dist.enabled:
            return flag
        t = torch.tensor(int(flag), device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t)

    def _skip(self, values: dict[str, float]) -> StepResult:
        """Skip this step (no optimizer update); stop after ``max_nonfinite`` in a row, or
        at once when the forward pass left non-finite BatchNorm statistics behind."""
        self.nonfinite_streak += 1
        step = self.step + 1  # the number this step gets in the logs
        shown = ", ".join(f"{k}={v:g}" for k, v in values.items())
        where = "" if not all(map(math.isfinite, values.values())) else " on another process"
        self.log.text(f"step {step}: non-finite loss{where} ({shown}); step skipped")
        self.log.scalars("nonfinite", step, values)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        bad_buffers = [f"{m}.{n}" for m, module in (("stage1", self.net.stage1), ("generator", self.net.generator),
                                                     ("discriminator", self.discriminator))
                       for n, b in module.named_buffers() if b.is_floating_point() and not torch.isfinite(b).all()]
        if self._any_rank(bool(bad_buffers)):
            more = f" and {len(bad_buffers) - 3} more" if len(bad_buffers) > 3 else ""
            names = f"{', '.join(bad_buffers[:3])}{more}" if bad_buffers else "on another process"
            raise NonFiniteLossError(
                f"step {step}: non-finite loss ({shown}) and the forward pass made running statistics "
                f"non-finite ({names}); stopping: {self._restart_advice()}")
        if self.nonfinite_streak >= self.cfg.train.max_nonfinite:
            raise NonFiniteLossError(
                f"{self.nonfinite_streak} non-finite losses in a row (last at step {step}: {shown}); stopping. "
                f"Lower the learning rate, use train.amp=bf16 instead of fp16, or set train.grad_clip")
        return StepResult(values, skipped=True)

    def _restart_advice(self) -> str:
        """Where to start again after a fatal non-finite loss: the last checkpoint when
        there is one, else from scratch."""
        meta = self.ckpt_dir / "last" / "checkpoint.json"
        try:
            step = json.loads(meta.read_text())["step"]
        except (OSError, ValueError, KeyError, TypeError):
            return ("no checkpoint has been saved yet: start again with a lower learning rate or "
                    "train.grad_clip")
        return (f"resume from the last checkpoint {meta.parent} (step {step}) with a lower learning rate "
                "or train.grad_clip")

    def _clip(self, opt, module: nn.Module) -> None:
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.train.grad_clip)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict:
        """Train to ``train.max_steps`` (or ``train.epochs``); returns the latest metrics
        (:meth:`final_metrics`). A stop signal (:data:`STOP_SIGNALS`) ends the run after
        the current step with ``last`` saved and :class:`TrainingStopped` raised. Any
        error is written to ``log.txt`` before it propagates; the run directory's lock is
        released either way."""
        try:
            with _StopSignals() as stops:
                self._fit(stops)
            return self.final_metrics()[1]
        except BaseException as exc:
            self._failed(exc)
            raise
        finally:
            self.close()

    def final_metrics(self) -> tuple[str, dict[str, float]]:
        """``("val", metrics)`` of the latest validation, else ``("train", losses)`` of the
        latest logged step (kept in the checkpoints: a resumed run has them too), else
        ``("", {})``."""
        for kind in ("val", "train"):
            if self.last_metrics.get(kind):
                return kind, dict(self.last_metrics[kind])
        return "", {}

    def _stop_requested(self, stops: _StopSignals) -> str | None:
        """The stop signal's name when one arrived (on any rank: all ranks stop at the
        same step), else None. A collective under DDP: every rank calls it at the same points."""
        name = stops.received
        if not self._any_rank(name is not None):
            return None
        return name or "a stop signal on another process"

    def _stop(self, name: str) -> None:
        """Save ``last`` (unless it already holds this very state), log, raise TrainingStopped."""
        if self._saved_last != (self.step, self.epoch, self.epoch_step):
            self.save("last")
        message = (f"stopped by {name} at step {self.step} (epoch {self.epoch + 1}, batch {self.epoch_step}); "
                   f"saved {self.ckpt_dir / 'last'}; continue with: spgnet train --run-dir {self.run_dir} --resume")
        self.log.text(message)
        raise TrainingStopped(message, signal_name=name, step=self.step)

    def _failed(self, exc: BaseException) -> None:
        """Write the error that ends the run into log.txt (one line; never raises)."""
        try:
            if isinstance(exc, TrainingStopped) or not getattr(self, "log", None):
                return
            exc = original_error(exc)
            if isinstance(exc, KeyboardInterrupt):
                text = "interrupted by SIGINT: stopped at once, nothing saved; the checkpoints on disk are as they were"
            elif isinstance(exc, (SPGNetError, NonFiniteLossError)):
                text = f"error: {exc}"
            else:
                text = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            self.log.text(text)
        except Exception:
            pass

    def close(self) -> None:
        """End the training loader's workers, close the logs and release the run directory
        (idempotent; :meth:`fit` calls it)."""
        try:
            self._close_train_loader()
        except Exception:
            pass
        log, self.log = getattr(self, "log", None), RunLogger(self.run_dir, enabled=False)
        if log is not None:
            try:
                log.close()
            except Exception:
                pass
        lock, self.lock = getattr(self, "lock", None), None
        if lock is not None:
            lock.release()

    def _fit(self, stops: _StopSignals) -> None:
        t = self.cfg.train
        from tqdm import tqdm

        self.log.text(f"training {self.cfg.name}: scheme={t.scheme} epochs={t.epochs} max_steps={t.max_steps} "
                      f"device={self.device} world_size={self.dist.world_size}"
                      + (f" ema_decay={t.ema_decay:g}" if self.ema else ""))
        if t.scheme == "sequential" and self.epoch < t.stage1_epochs:
            stage2_from = min(t.stage1_epochs, t.epochs) * (self.sampler.num_samples // t.batch_size)
            if (t.max_steps and t.max_steps <= stage2_from) or t.epochs <= t.stage1_epochs:
                warning = (f"warning: scheme=sequential trains stage 2 only after train.stage1_epochs="
                           f"{t.stage1_epochs} epochs (step {stage2_from}), but the run ends before that "
                           f"(train.max_steps={t.max_steps}, train.epochs={t.epochs}): stage 2 will not train")
                self.log.text(warning)
                if self.dist.is_main:
                    print(warning, file=sys.stderr)
        done = bool(t.max_steps) and self.step >= t.max_steps  # resuming a finished run
        while self.epoch < t.epochs and not done:
            self.sampler.set_epoch(self.epoch, start=self.epoch_step * t.batch_size)
            loader = self.train_loader()
            bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{t.epochs}", disable=not self.progress,
                       dynamic_ncols=True, leave=False)
            t0 = time.perf_counter()
            for batch in bar:
                if t.debug_rank_digest:
                    self._seen.extend([self.epoch, name] for name in batch["pair_name"])
                result = self.train_step(batch)
                self.step += 1
                self.epoch_step += 1
                rate = self.epoch_step / max(time.perf_counter() - t0, 1e-9)
                if not result.skipped:
                    bar.set_postfix({**{k: f"{v:.3f}" for k, v in result.losses.items()}, "it/s": f"{rate:.2f}"})
                    if self.step % t.log_every == 0:
                        self.log.scalars("train", self.step, result.losses, epoch=self.epoch)
                        self.last_metrics["train"] = dict(result.losses)
                    if t.image_every and self.step % t.image_every == 0:
                        self._log_images()
                if t.save_every and self.step % t.save_every == 0:
                    self.save("last")
                if t.max_steps and self.step >= t.max_steps:
                    done = True
                    break
                if name := self._stop_requested(stops):
                    bar.close()
                    self._stop(name)  # saves `last` mid-epoch; the loader's workers end with it
            bar.close()
            if not done:
                self.epoch += 1
                self.epoch_step = 0
                if t.val_every and self.epoch % t.val_every == 0:
                    self.validate()
                self.save("last")
                if name := self._stop_requested(stops):  # arrived during validation or the save
                    self._stop(name)
        recalibrated = bool(t.precise_bn_batches) and self._bn_step != self.step
        if recalibrated:
            self.recompute_bn_stats()
        if done or recalibrated:
            self.save("last")
        if t.debug_rank_digest:
            self.write_rank_digest()
        self.log.text(f"finished at step {self.step}")

    def _log_images(self) -> None:
        """Image grid of the last step, from that step's own outputs (running stage 1 again
        here, in training mode, would change its BatchNorm statistics)."""
        b, logits, fake = getattr(self, "_last_images", (None, None, None))
        if not self.dist.is_main or fake is None:
            return
        parsing = torch.from_numpy(colorize(logits.argmax(1).cpu())).permute(0, 3, 1, 2).float() / 127.5 - 1
        pose = b["tgt_pose"][:, :18].amax(1, keepdim=True).expand(-1, 3, -1, -1) * 2 - 1
        grid = image_grid([b["src_image"].cpu(), pose.cpu(), parsing, fake.detach().float().cpu(), b["tgt_image"].cpu()])
        self.log.image("train/source|target-pose|pred-parsing|generated|ground-truth", self.step, grid)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Inference path (predicted parsing) on the test pairs: L1, SSIM, PSNR, mIoU.

        Runs on every rank over its shard; the per-rank means are combined weighted by
        the shard sizes (a rank may have fewer pairs, or none). The plateau schedulers
        step on the L1 (reconstruction) loss; ``best`` is by SSIM. With EMA on
        (``train.ema_decay``) the EMA weights are scored (:meth:`inference_net`) and the
        log line says so.
        """
        from spgnet.evaluation.batch import evaluate_batches

        t = self.cfg.train
        self.recompute_bn_stats()
        n = len(self.val_set) if not t.val_pairs else min(t.val_pairs, len(self.val_set))
        indices = list(range(self.dist.rank, n, self.dist.world_size))
        stage2 = self.stage2_trains()
        keys = ("ce", "l1", "miou", "psnr", "ssim") if stage2 else ("ce", "miou")  # evaluate_batches' names
        metrics: dict = {}
        if indices:
            loader = self._loader(torch.utils.data.Subset(self.val_set, indices), batch_size=max(1, t.batch_size))
            net = self.inference_net()
            was = self.net.training
            net.eval()
            metrics = evaluate_batches(net, (self._batch(b) for b in loader), stage2=stage2,
                                       autocast=self._autocast)
            self.net.train(was)
        sums = torch.tensor([metrics[k] * len(indices) if indices else 0.0 for k in keys] + [len(indices)],
                            dtype=torch.float64, device=self.device)
        sums = all_reduce_sum(sums, self.dist)
        if float(sums[-1]) == 0:  # no test pair at all: no numbers, no scheduler step, no `best`
            self.log.text("validation skipped: the test split has no pairs")
            return {}
        metrics = {k: float(v) for k, v in zip(keys, (sums[:-1] / sums[-1]).tolist())}
        self.last_metrics["val"] = dict(metrics)
        self.log.scalars("val", self.step, metrics, epoch=self.epoch)
        self.log.text("validation " + ("(EMA weights) " if self.ema else "")
                      + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        monitor = metrics.get("l1", metrics.get("ce"))
        if monitor is not None:
            for sched in self.schedulers.values():
                sched.step(monitor)
        if "ssim" in metrics and metrics["ssim"] > self.best_ssim:
            self.best_ssim = metrics["ssim"]
            self.save("best")
        return metrics

    def recompute_bn_stats(self) -> None:
        """Precise BatchNorm statistics (:mod:`spgnet.training.precise_bn`) for stage 1 and
        the generator: their running mean/variance become the average over
        ``train.precise_bn_batches`` fixed training batches (the same on every call, split
        over the ranks) forwarded with the current weights as in training. Called before
        every validation and before the final checkpoint; 0 keeps the moving averages.
        With EMA on, the EMA copies are recalibrated too, on the same batches with their
        own weights (the buffers they copy from the live modules belong to the live weights)."""
        from spgnet.training.precise_bn import recompute_bn_stats

        t = self.cfg.train
        if t.precise_bn_batches <= 0:
            return
        indices = self.calibration_indices()
        stage2 = self.stage2_trains()

        def forward(stage1: nn.Module, generator: nn.Module):
            def run(batch: dict) -> None:
                b = self._batch(batch)
                with self._autocast():
                    logits = stage1(self.net.stage1_input(b), b["src_pose"], b["tgt_pose"])
                    if stage2:
                        tgt_labels, tgt_onehot = self._stage2_target(b, logits)
                        flow, vis = self.net.flow(b, tgt_labels)
                        generator(b["src_image"], b["src_parsing_onehot"], tgt_onehot, b["tgt_pose"], flow, vis)
            return run

        pairs = [(self.net.stage1, self.net.generator)]
        if self.ema:
            pairs.append((self.ema["stage1"].module, self.ema["generator"].module))
        for stage1, generator in pairs:
            loader = self._loader(torch.utils.data.Subset(self.train_set, indices))
            recompute_bn_stats([stage1, generator] if stage2 else [stage1], forward(stage1, generator), loader,
                               dist=self.dist, devices=[self.device] if self.device.type == "cuda" else None)
        self._bn_step = self.step

    def inference_net(self) -> nn.Module:
        """The network validation scores: :attr:`net`, or with EMA on a view of it whose
        stage 1 and generator are the EMA copies (it shares the config and the flow
        provider; the copies stay in eval mode)."""
        if not self.ema:
            return self.net
        view = copy.copy(self.net)  # own table of submodules, the rest shared
        view._modules = {**self.net._modules, "stage1": self.ema["stage1"].module,
                         "generator": self.ema["generator"].module}
        return view.eval()

    def calibration_indices(self) -> list[int]:
        """This rank's training samples for :meth:`recompute_bn_stats`: a fixed random choice
        of ``precise_bn_batches`` batches per rank (all ranks the same number)."""
        t, world = self.cfg.train, self.dist.world_size
        per_rank = min(t.precise_bn_batches * t.batch_size, len(self.train_set) // world)
        order = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(t.seed + 7919))
        return order[: per_rank * world][self.dist.rank::world].tolist()

    def write_rank_digest(self) -> Path:
        """``run_dir/rank<R>_digest.json`` (every rank): a SHA-256 per parameter and per
        buffer of stage 1, the generator and the discriminator, and the ``[epoch, pair]``
        samples this rank trained on. For checking DDP replicas stay identical and shard
        the data (``train.debug_rank_digest``)."""
        modules = {"stage1": self.net.stage1, "generator": self.net.generator, "discriminator": self.discriminator}
        record = {
            "rank": self.dist.rank, "world_size": self.dist.world_size, "step": self.step,
            "parameters": {f"{m}.{n}": tensor_digest(p) for m, mod in modules.items()
                           for n, p in mod.named_parameters()},
            "buffers": {f"{m}.{n}": tensor_digest(b) for m, mod in modules.items() for n, b in mod.named_buffers()},
            "seen": self._seen,
        }
        path = self.run_dir / f"rank{self.dist.rank}_digest.json"
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        return path

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        """The ``extra`` of a checkpoint: the position in training, the RNG states of every
        rank, the latest metrics (the final line of a resumed run) and the length of
        metrics.jsonl (a resume cuts what was logged after the checkpoint)."""
        return {"step": self.step, "epoch": self.epoch, "epoch_step": self.epoch_step,
                "best_ssim": self.best_ssim, "nonfinite_streak": self.nonfinite_streak,
                "rank_rng": self._rank_rng_states(), "metrics_offset": self.log.metrics_offset(),
                "last_metrics": {k: dict(v) for k, v in self.last_metrics.items()}}

    def _rank_rng_states(self) -> list[dict] | None:
        """Every rank's torch RNG state (CPU and its own GPU), gathered on all ranks: the
        checkpoint's global RNG state is rank 0's, and the SEAN noise of the other ranks
        must continue from their own streams for an exact resume."""
        if not self.dist.enabled:
            return None
        mine = {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        states: list = [None] * self.dist.world_size
        torch.distributed.all_gather_object(states, mine)
        return states

    def _restore_rank_rng(self, states: list | None) -> None:
        if not self.dist.enabled:
            return
        if states and len(states) == self.dist.world_size:
            mine = states[self.dist.rank]
            torch.set_rng_state(mine["cpu"])
            if mine.get("cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.device)
            return
        # saved by another number of processes: continue reproducibly, not exactly
        torch.manual_seed(self.cfg.train.seed + 1_000_003 * self.dist.rank + self.step)
        self.log.text(f"checkpoint has RNG states for {len(states or [])} process(es), running {self.dist.world_size}: "
                      "ranks reseeded (the run continues, not bit-exactly)")

    def save(self, name: str) -> None:
        from spgnet.utils.checkpoint import save_checkpoint

        state = self._state()  # a collective under DDP: every rank takes part
        if self.dist.is_main:
            save_checkpoint(
                self.ckpt_dir / name,
                models=self.models(), optimizers=self.optimizers, schedulers=self.schedulers, scalers={"scaler": self.scaler},
                step=self.step, epoch=self.epoch, config_dict=config_to_dict(self.cfg), extra=state,
                ema={name: ema.module for name, ema in self.ema.items()},
            )
        if name == "last":
            self._saved_last = (self.step, self.epoch, self.epoch_step)
        barrier(self.dist)

    def models(self) -> dict[str, nn.Module]:
        """The raw networks a checkpoint stores (the official flow network when used)."""
        models = {"stage1": self.net.stage1, "generator": self.net.generator, "discriminator": self.discriminator}
        if self.net.flow_net is not None:
            models["flow"] = self.net.flow_net
        return models

    def initialize_from(self, path: Path) -> None:
        """Load the weights of every model ``path`` holds that this run has (``init``); the
        others keep their fresh initialisation. EMA copies restart from the loaded weights."""
        from spgnet.utils.checkpoint import load_checkpoint, read_checkpoint_info

        if not path.exists():
            raise SPGNetError(f"{path}: checkpoint to initialise from not found")
        stored = set(read_checkpoint_info(path).get("models", {}))
        wanted = {name: module for name, module in self.models().items() if name in stored}
        if self.net.flow_net is not None and "flow" not in wanted:
            raise SPGNetError(f"{path}: holds no official flow network (model 'flow'), which train.flow=official "
                              "needs (spgnet convert-official --flow-dir writes it)")
        if not wanted:
            raise SPGNetError(f"{path}: holds none of this run's networks (stage1, generator, discriminator, flow)")
        load_checkpoint(path, models=wanted, restore_rng=False, map_location=self.device, training_state=False)
        for name, ema in self.ema.items():
            ema.reset(getattr(self.net, name))
        fresh = sorted(set(self.models()) - set(wanted))
        self.log.text(f"initialised {', '.join(sorted(wanted))} from {path}"
                      + (f"; {', '.join(fresh)} from scratch" if fresh else ""))

    def load(self, path: Path) -> None:
        """Resume from a checkpoint. With EMA on, the EMA copies are restored when it holds
        them, else they restart from its weights (EMA switched on for the resumed run)."""
        from spgnet.utils.checkpoint import load_checkpoint, read_checkpoint_info, resolve_checkpoint

        try:  # a save interrupted between its two renames left the previous copy: use it
            where = resolve_checkpoint(path)
        except SPGNetError:
            if not Path(path).exists():
                raise SPGNetError(f"{path}: checkpoint to resume from not found") from None
            raise
        if where != Path(path):
            self.log.text(f"{path}: missing after an interrupted save; resuming from the previous checkpoint {where}")
        stored = set(read_checkpoint_info(path).get("ema", {})) if self.ema else set()
        info = load_checkpoint(
            path, models=self.models(),
            optimizers=self.optimizers, schedulers=self.schedulers, scalers={"scaler": self.scaler},
            restore_rng=True, map_location=self.device,
            ema={name: ema.module for name, ema in self.ema.items() if name in stored},
        )
        restarted = [name for name in self.ema if name not in stored]
        for name in restarted:
            self.ema[name].reset(getattr(self.net, name))
        if restarted:
            self.log.text(f"{path}: no EMA weights of {', '.join(restarted)}; their averages start from its weights")
        extra = info.get("extra", {})
        self.step = int(extra.get("step", info.get("step", 0)))
        self.epoch = int(extra.get("epoch", info.get("epoch", 0)))
        self.epoch_step = int(extra.get("epoch_step", 0))
        self.best_ssim = float(extra.get("best_ssim", -math.inf))
        self.nonfinite_streak = int(extra.get("nonfinite_streak", 0))
        self.last_metrics = {k: dict(v) for k, v in (extra.get("last_metrics") or {}).items() if isinstance(v, dict)}
        self._saved_last = (self.step, self.epoch, self.epoch_step) if Path(path).name == "last" else None
        self._restore_rank_rng(extra.get("rank_rng"))
        self.log.text(f"resumed from {path} at step {self.step} (epoch {self.epoch}, batch {self.epoch_step})")
        # what the interrupted run logged after this checkpoint is logged again: drop it
        same_run = Path(info["path"]).resolve().parent.parent == self.run_dir.resolve()
        offset = extra.get("metrics_offset") if same_run else None
        dropped = self.log.resume(self.step, offset if isinstance(offset, int) else None)
        if dropped:
            self.log.text(f"metrics.jsonl: dropped {dropped} record(s) logged after step {self.step} "
                          "(those steps run again)")
