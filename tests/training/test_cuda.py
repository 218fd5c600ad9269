"""CUDA-only checks (scripts/gpu_check.sh runs them; skipped where there is no GPU): host
syncs of a training step counted by CUDA itself, the look-up routes equal to the conv
route on the GPU (forward and gradients), every AMP mode on every route, and
train.deterministic running with warnings where CUDA has no deterministic kernel.

``SPGNET_GPU_TEST_DEVICE=cpu`` runs the device-independent ones on the CPU (to check the
tests themselves on a machine without a GPU)."""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

from spgnet.training.trainer import CUDA_NONDETERMINISTIC, Trainer

import helpers

DEVICE = os.environ.get("SPGNET_GPU_TEST_DEVICE", "cuda")
ROUTES = ("conv", "lookup", "shell")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (scripts/gpu_check.sh)")
needs_cuda = pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="CUDA's own sync detection")


def make_trainer(root, tmp_path, *overrides: str) -> Trainer:
    cfg = helpers.tiny_config(root, f"train.device={DEVICE}", "train.losses.adversarial_start_epoch=1",
                              "train.losses.adversarial=0.01", "train.val_every=0", *overrides)
    return Trainer(cfg, run_dir=tmp_path / "run", progress=False)


@pytest.fixture()
def restore_flags():
    state = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    yield
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = state[2:]


@needs_cuda
@pytest.mark.parametrize("route", [None, "lookup", "conv"], ids=lambda r: r or "auto")
def test_training_step_syncs_counted_by_cuda(tiny_dataset, tmp_path, route):
    """The budget of tests/training/test_gpu_readiness.py, as CUDA sees it
    (``torch.cuda.set_sync_debug_mode``): one read of the losses, one of the ACE look-up
    sizes (none on the conv route)."""
    trainer = make_trainer(tiny_dataset, tmp_path)
    trainer.net.generator.ace_route = route
    batch = next(iter(trainer._loader(trainer.train_set)))  # pinned: the copy to the GPU does not sync
    trainer.train_step(batch)
    torch.cuda.synchronize()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            trainer.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        trainer.close()
    syncs = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= (1 if route == "conv" else 2), "\n".join(syncs)


def test_fast_routes_equal_the_conv_route():
    """Ours on the GPU: the look-up and border-shell routes give the conv route's output
    and gradients (float64: any restructuring that is not exact would show far above
    rounding; every route starts from the same state, since a training forward updates
    spectral norm's power-iteration vectors)."""
    from spgnet.apps.bench import bench_preset, generator_args, synthetic_inputs
    from spgnet.models.generator import SPGNetGenerator

    cfg = bench_preset("tiny").generator
    x = {k: v.to(DEVICE, torch.float64) for k, v in synthetic_inputs(2, (64, 48), cfg.pose_channels).items()}
    torch.manual_seed(0)
    net = SPGNetGenerator(cfg).to(DEVICE, torch.float64).train()
    state = copy.deepcopy(net.state_dict())
    results = {}
    for route in ROUTES:
        net.load_state_dict(state)
        net.ace_route = route
        net.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same noise
        out = net(*generator_args(x))
        weight = torch.linspace(-1, 1, out.numel(), device=out.device, dtype=out.dtype).view_as(out)
        (out * weight).sum().backward()
        results[route] = (out.detach(), {n: p.grad.detach().clone() for n, p in net.named_parameters()
                                         if p.grad is not None})
    ref_out, ref_grads = results["conv"]
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for route in ("lookup", "shell"):
        out, grads = results[route]
        assert float((out - ref_out).abs().max() / ref_out.abs().max()) <= 1e-10, route
        assert grads.keys() == ref_grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-7, atol=1e-9 * scale, msg=f"{route} {name}")


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_every_amp_mode_on_every_route(tiny_dataset, tmp_path, amp):
    trainer = make_trainer(tiny_dataset, tmp_path, f"train.amp={amp}", "train.channels_last=true")
    batch = next(iter(trainer._loader(trainer.train_set)))
    try:
        for route in ROUTES:
            trainer.net.generator.ace_route = route
            for _ in range(24):  # fp16: the GradScaler skips overflowing steps, halving its scale
                scale = trainer.scaler.get_scale() if amp == "fp16" else None
                result = trainer.train_step(batch)
                if amp != "fp16" or trainer.scaler.get_scale() >= scale:
                    break
            assert not result.skipped, (route, result.losses)
            assert {"ce", "l1", "gan_g", "gan_d"} <= set(result.losses)
            for module in (trainer.net.stage1, trainer.net.generator, trainer.discriminator):
                for p in module.parameters():
                    assert p.dtype == torch.float32
                    assert p.grad is None or bool(torch.isfinite(p.grad).all()), route
    finally:
        trainer.close()


def test_deterministic_mode_runs_and_names_what_is_not(tiny_dataset, tmp_path, restore_flags):
    """train.deterministic=true: on CUDA a step runs (warn_only) and torch warns for the
    ops of CUDA_NONDETERMINISTIC only; on the CPU nothing warns."""
    trainer = make_trainer(tiny_dataset, tmp_path, "train.deterministic=true")
    batch = next(iter(trainer._loader(trainer.train_set)))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = trainer.train_step(batch)
    finally:
        trainer.close()
    assert not result.skipped
    messages = {str(w.message).split(" does not have a deterministic implementation")[0]
                for w in caught if "deterministic implementation" in str(w.message)}
    if DEVICE.startswith("cuda"):
        assert messages, "expected warnings for the ops without deterministic CUDA kernels"
        known = ("grid_sampler", "reflection_pad", "nll_loss2d")
        assert all(any(k in m for k in known) for m in messages), (messages, CUDA_NONDETERMINISTIC)
    else:
        assert not messages
