"""Precise BatchNorm statistics (spgnet.training.precise_bn, Trainer.recompute_bn_stats):
the running statistics become the plain average of the per-batch statistics (checked
against statistics computed by hand), nothing else changes (parameters, modes, RNG),
and after training the eval-mode network reproduces its training-mode output on the
calibration batches — the property whose absence made a demo run collapse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet.training.precise_bn import batchnorm_layers, recompute_bn_stats
from spgnet.training.trainer import Trainer

import helpers
from helpers import torch_threads


def two_bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5))
    with torch.no_grad():  # non-trivial affine parameters and stale running statistics
        for bn in (net[1], net[4]):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
            bn.running_mean.fill_(7.0)
            bn.running_var.fill_(0.01)
    return net


def batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance (what BatchNorm stores as running_var)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    return flat.mean(1), flat.var(1, unbiased=True)


def by_hand(net: nn.Sequential, batches: list[torch.Tensor]):
    """Expected running statistics: the average over the batches of each layer's batch
    statistics, the forward normalising with batch statistics as in training."""
    conv1, bn1, conv2 = net[0], net[1], net[3]
    s1, s2 = [], []
    with torch.no_grad():
        for x in batches:
            h = conv1(x)
            m, v = batch_stats(h)
            s1.append((m, v))
            biased = h.transpose(0, 1).reshape(h.shape[1], -1).var(1, unbiased=False)
            h = (h - m[:, None, None]) / torch.sqrt(biased[:, None, None] + bn1.eps)
            h = F.relu(h * bn1.weight[:, None, None] + bn1.bias[:, None, None])
            s2.append(batch_stats(conv2(h)))
    avg = lambda stats, i: torch.stack([s[i] for s in stats]).mean(0)  # noqa: E731
    return (avg(s1, 0), avg(s1, 1)), (avg(s2, 0), avg(s2, 1))


def test_running_statistics_are_the_average_of_the_batch_statistics():
    net = two_bn_net().eval()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(3, 3, 8, 6, generator=g) * 2 + 1 for _ in range(4)]
    (m1, v1), (m2, v2) = by_hand(net, batches)
    params = {k: v.clone() for k, v in net.named_parameters()}

    recompute_bn_stats([net], lambda x: net(x), batches)

    torch.testing.assert_close(net[1].running_mean, m1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[1].running_var, v1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[4].running_mean, m2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[4].running_var, v2, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(p, params[k]) for k, p in net.named_parameters())
    assert not net.training and not any(m.training for m in net.modules())  # modes as they were
    assert [bn.momentum for bn in batchnorm_layers(net)] == [0.1, 0.1]


def test_mixed_modes_are_restored_and_the_rng_streams_untouched():
    net = two_bn_net().train()
    net[4].eval()
    noisy = lambda x: net(x + torch.randn_like(x))  # noqa: E731  (draws from the global RNG)
    batches = [torch.randn(2, 3, 4, 4)]
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    recompute_bn_stats([net], noisy, batches)
    assert torch.equal(torch.rand(3), expected_next)
    assert net.training and net[1].training and not net[4].training


# --------------------------------------------------------------------------- in the trainer


@torch.no_grad()
def no_noise(generator: nn.Module) -> None:
    """SEAN noise off: the same draws in two forwards would need the same RNG state."""
    for name, p in generator.named_parameters():
        if name.endswith("noise_scale"):
            p.zero_()


@pytest.fixture(scope="module")
def data_root(tiny_dataset) -> Path:
    return tiny_dataset


def test_after_training_eval_mode_reproduces_batch_statistics_on_the_calibration_batch(data_root, tmp_path):
    """Calibrated on one batch, the eval-mode stage 1 and generator give the output they give
    with batch statistics on that batch; the stale moving averages of a high-learning-rate
    run do not. Spectral-norm power iterations and RNG streams are left as they were."""
    overrides = ["train.max_steps=6", "train.val_every=0", "train.lr_g=0.01", "train.lr_stage1=0.01",
                 "train.precise_bn_batches=1"]
    with torch_threads(1):
        trainer = Trainer(helpers.tiny_config(data_root, *overrides), run_dir=tmp_path / "run", progress=False)
        trainer.fit()
        no_noise(trainer.net.generator)
        others = {k: v.clone() for k, v in trainer.net.state_dict().items() if "running" not in k}
        rng = torch.get_rng_state()
        trainer.recompute_bn_stats()
        assert torch.equal(torch.get_rng_state(), rng)
        now = trainer.net.state_dict()
        assert [k for k, v in others.items() if not torch.equal(now[k], v)] == []  # spectral norm's u, v too
        samples = [trainer.train_set[i] for i in trainer.calibration_indices()]  # one batch
        assert len(samples) == trainer.cfg.train.batch_size
        b = trainer._batch(torch.utils.data.default_collate(samples))
        net = trainer.net

        sizes: dict[nn.Module, int] = {}  # values per channel each BatchNorm normalised over

        def outputs(batch_stats: bool) -> tuple[torch.Tensor, torch.Tensor]:
            """Stage-1 logits and generated image of the calibration batch, spectral norm as at
            inference; BatchNorm with batch statistics, or with the running statistics (the
            running variance rescaled from unbiased to the biased one normalisation uses)."""
            state = {k: v.clone() for k, v in net.state_dict().items()}
            net.eval()
            layers = batchnorm_layers(net)
            hooks = [bn.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, i[0].numel() // i[0].shape[1]))
                     for bn in layers]
            for bn in layers:
                bn.train(batch_stats)
                if not batch_stats:
                    bn.running_var.mul_((sizes[bn] - 1) / sizes[bn])
            with torch.no_grad():
                logits = net.stage1(net.stage1_input(b), b["src_pose"], b["tgt_pose"])
                flow, vis = net.flow(b, b["tgt_parsing"])
                image = net.generator(b["src_image"], b["src_parsing_onehot"], b["tgt_parsing_onehot"],
                                      b["tgt_pose"], flow, vis)
            for h in hooks:
                h.remove()
            net.load_state_dict(state)
            return logits, image

        (l_batch, i_batch) = outputs(True)
        (l_eval, i_eval) = outputs(False)
        torch.testing.assert_close(l_eval, l_batch, rtol=0, atol=1e-4 * float(l_batch.abs().max()))
        torch.testing.assert_close(i_eval, i_batch, rtol=0, atol=1e-4)

        # the same run without the recalibration: eval mode is far from training mode
        trainer2 = Trainer(helpers.tiny_config(data_root, *overrides[:-1], "train.precise_bn_batches=0"),
                           run_dir=tmp_path / "run0", progress=False)
        trainer2.fit()
        no_noise(trainer2.net.generator)
        net = trainer2.net
        (_, i_batch), (_, i_eval) = outputs(True), outputs(False)
        assert float((i_eval - i_batch).abs().max()) > 0.05
