"""Mixed precision on every route: each AMP mode (none, bf16, fp16 with the GradScaler) x
each ACE route (conv, lookup, shell) x channels_last off/on runs a full training step
(stage 1, generator with the adversarial term, discriminator) at a tiny size, with finite
losses and finite float32 gradients on the float32 master weights (with fp16, once the
GradScaler has found a scale without overflow, as it is made to)."""

from __future__ import annotations

import itertools

import pytest
import torch

from helpers import tiny_config
from spgnet.training.trainer import Trainer

AMPS = ("none", "bf16", "fp16")
ROUTES = ("conv", "lookup", "shell")


@pytest.mark.parametrize("amp,channels_last", list(itertools.product(AMPS, (False, True))))
def test_training_step_on_every_route(tiny_dataset, tmp_path, one_thread, amp, channels_last):
    cfg = tiny_config(tiny_dataset, f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}",
                      "train.losses.adversarial_start_epoch=1", "train.losses.adversarial=0.01", "train.val_every=0", "train.max_steps=1")
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    batch = next(iter(trainer._loader(trainer.train_set)))
    for route in ROUTES:
        trainer.net.generator.ace_route = route
        for _ in range(24):  # fp16: the GradScaler skips overflowing steps, halving its scale each time
            scale = trainer.scaler.get_scale() if amp == "fp16" else None
            result = trainer.train_step(batch)
            if amp != "fp16" or trainer.scaler.get_scale() >= scale:
                break
        else:
            pytest.fail(f"{route}: the fp16 GradScaler never accepted a step")
        assert not result.skipped, (route, result.losses)
        assert {"ce", "l1", "gan_g", "gan_d"} <= set(result.losses), route
        assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values()), (route, result.losses)
        for name, module in (("stage1", trainer.net.stage1), ("generator", trainer.net.generator),
                             ("discriminator", trainer.discriminator)):
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            assert grads, (route, name)
            for p in module.parameters():
                assert p.dtype == torch.float32
            for g in grads:
                assert g.dtype == torch.float32 and torch.isfinite(g).all(), (route, name)
