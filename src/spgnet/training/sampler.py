"""A resumable, DDP-aware sampler: the order of an epoch depends only on (seed, epoch),
so a run resumed mid-epoch sees exactly the samples an uninterrupted run would."""

from __future__ import annotations

import torch
from torch.utils.data.distributed import DistributedSampler


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` (also for one process) that can start mid-epoch.

    ``set_epoch(epoch, start=k)`` skips the first ``k`` samples of this rank's share.
    With ``flips=True`` each index is yielded as ``(index, flip)`` where the horizontal
    flip is drawn from the same seeded generator, so augmentation does not depend on
    which loader worker handles a sample (:class:`PairDataset` accepts such tuples).
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True, flips: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.flips = flips
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())
        flips = [False] * len(indices)
        if self.flips:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + self.rank)
            flips = (torch.rand(len(indices), generator=g) < 0.5).tolist()
        items = list(zip(indices, flips)) if self.flips else indices
        return iter(items[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
