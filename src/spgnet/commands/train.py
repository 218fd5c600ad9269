"""``spgnet train --config C [--set key=value ...] [--resume [CKPT] | --init CKPT]``.

Multi-GPU: ``torchrun --nproc_per_node=N -m spgnet train --config C`` (multi-node with
torchrun's usual ``--nnodes/--node_rank/--master_addr`` flags): the same code runs
one process per device, rank 0 logs and checkpoints.

Resuming (``--resume CKPT``, or ``--run-dir RUN --resume`` for ``RUN/checkpoints/last``):
the config is ``--config`` when given, else the one stored in the checkpoint; ``--set``
overrides apply on top either way (e.g. ``--resume CKPT --set train.max_steps=20000``).

On a cluster (docs/operations.md): SIGTERM, SIGINT or SIGUSR1 finish the current step,
save ``last`` and exit with status 75 (resume with ``--resume``); a second training in the
same run directory is refused; exit status 74 means the disk filled up while saving.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="YAML config (configs/*.yaml); optional with --resume (default: the checkpoint's config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.batch_size=8 (repeatable)")
    p.add_argument("--run-dir", default=None, help="run directory (default: a new numbered one under train.out_dir)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="resume from CKPT, or from RUN_DIR/checkpoints/last when no path is given")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="initialise the networks CKPT holds from it (weights only; fine-tuning, e.g. from a "
                        "convert-official checkpoint: stage 1 and the discriminator start from scratch)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_config(args: argparse.Namespace):
    """The run's :class:`~spgnet.config.Config` from ``--config``/``--resume``/``--set``."""
    from pathlib import Path

    from spgnet import SPGNetError
    from spgnet.utils.checkpoint import read_checkpoint_config
    from spgnet.config import apply_overrides, config_from_dict, load_config

    if args.resume is True and args.run_dir is None:
        raise SPGNetError("--resume without a checkpoint path needs --run-dir (the run to continue)")
    if args.config is not None:
        return load_config(args.config, args.overrides)
    if args.resume is None:
        raise SPGNetError("--config is required (unless resuming: --resume CKPT, or --run-dir RUN --resume)")
    checkpoint = Path(args.run_dir) / "checkpoints" / "last" if args.resume is True else Path(args.resume)
    saved = read_checkpoint_config(checkpoint)
    return config_from_dict(apply_overrides(saved, args.overrides), f"{checkpoint} config")


def run(args: argparse.Namespace) -> int:
    from spgnet import SPGNetError
    from spgnet.training.losses import NonFiniteLossError
    from spgnet.training.distributed import shutdown
    from spgnet.training.trainer import Trainer

    if args.init and args.resume:
        raise SPGNetError("--init and --resume exclude each other (a resumed run has its own weights)")
    cfg = resolve_config(args)
    try:
        trainer = Trainer(cfg, run_dir=args.run_dir, resume=args.resume, progress=not args.no_progress,
                          init=args.init)
        trainer.fit()
    except NonFiniteLossError as exc:
        raise SPGNetError(str(exc)) from None
    finally:
        shutdown()  # also when building the trainer failed after joining the process group
    if trainer.dist.is_main:
        kind, metrics = trainer.final_metrics()
        shown = f"{kind}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()) if metrics else "(no metrics logged)"
        print(f"run: {trainer.run_dir}  step {trainer.step}  {shown}")
    return 0
