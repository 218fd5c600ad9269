"""DDP through torchrun with the same code for one device (nanoGPT / DiT style).

``torchrun --nproc_per_node=N -m spgnet train ...`` sets RANK / WORLD_SIZE /
LOCAL_RANK; without them everything runs as a single process of rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from spgnet.utils.device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun; a no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank, what="train.device")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of a tensor over ranks (returns the input on a single process)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class SyncBatchNormNoCondition(nn.SyncBatchNorm):
    """:class:`torch.nn.SyncBatchNorm` with the call signature of
    :class:`spgnet.models.sean.BatchNormNoCondition` (``norm(x, parsing, codes)``)."""

    def forward(self, x: torch.Tensor, parsing=None, codes: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``train.sync_bn``: every BatchNorm of ``module`` becomes a SyncBatchNorm sharing its
    parameters and buffers (the state-dict keys stay the same), as
    :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm` does, except that the baselines'
    :class:`~spgnet.models.sean.BatchNormNoCondition` keeps its three-argument call (torch's
    conversion makes it a plain SyncBatchNorm, which the decoder cannot call). Without a
    process group a SyncBatchNorm computes what the BatchNorm did."""
    from spgnet.models.sean import BatchNormNoCondition

    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
        cls = SyncBatchNormNoCondition if isinstance(module, BatchNormNoCondition) else nn.SyncBatchNorm
        synced = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        synced.running_mean, synced.running_var = module.running_mean, module.running_var
        synced.num_batches_tracked = module.num_batches_tracked
        synced.training = module.training
        return synced
    for name, child in list(module.named_children()):
        module.add_module(name, convert_sync_batchnorm(child))
    return module


def shutdown() -> None:
    """Leave the process group, if this process joined one (safe to call always)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
