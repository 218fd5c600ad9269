"""Benchmarks of the stage-2 generator: our implementation against the straightforward one.

:func:`run_bench` measures :class:`~spgnet.models.generator.SPGNetGenerator` and, in the
same run and with the same weights, the reference implementation in
:mod:`spgnet.models.reference` (the official release's algorithm: Python loops over
batch items and classes, masked scatter of the style vectors, 5×5 convs over the
128-channel style map, separate γ/β convs). Inputs are realistic: synthetic people
(:mod:`spgnet.data.synth`) with their parsing, pose maps and ground-truth flow.

A *case* is (setting = model preset @ H×W, batch, mode, implementation). Per case:

* ``train`` — one training step of stage 2 (docs/design.md §9): G forward, L1 + 0.01·GAN loss
  with D frozen, backward, Adam; D on real and detached fake, backward, Adam. The VGG19
  perceptual term is left out (its ImageNet weights are not shipped; it is the same
  cost for both implementations).
* ``fwdbwd`` — G forward + backward of its L1 loss, no optimizer (the CPU target of docs/performance.md).
* ``infer`` — G forward in eval mode without autograd: images/s.
* peak memory: CUDA ``max_memory_allocated``; CPU the process's peak resident set
  (``VmHWM``, reset per case; it includes the ~0.5 GB of Python + torch), and the
  device-independent size of the activations autograd saves for G's backward.

Also per run: parameters of G and D, GFLOP per generator forward per image
(``torch.utils.flop_counter`` on real inputs at batch 1, so data-dependent paths count
what they do; table look-ups and additions are not counted by it), the device's measured
fp32 / bf16 matmul rate, and the data loader's samples/s at each setting's size.

Modes: ``fp32`` (eager, NCHW), ``bf16-cl`` (autocast bf16 + channels_last),
``bf16-cl-compile`` (also ``torch.compile`` of G and D; ours only: the reference's
per-class Python loops are not compilable in any useful sense).

ACE routes (:data:`spgnet.models.sean.ROUTES`; ``--routes``, ours only): ``auto`` (the
default choice per resolution and device) or a forced one. Every row names the route that
ran: ``auto`` resolves per resolution (e.g. ``auto: shell+lookup``). Under
``torch.compile`` ACE always takes the ``conv`` route: the look-up routes need the
parsing's values on the host (is it a hard one-hot, how many pixels are near a class
border: data-dependent sizes), which would break the graph at every ACE and recompile for
every new border size. So a compiled row measures the conv route, and for every compile
mode the run adds the eager row of the same precision and layout on the conv route (the
same algorithm, compiled or not); the eager rows on ``auto`` are what training runs.

Robustness: each case runs on its own — an error in one (or in one measure of it) is
recorded in its row as one line and the other cases still run; the per-setting
information (FLOPs, loader) likewise. ``on_update`` is called after every case with the
report so far (the CLI rewrites its JSON and Markdown files then). ``compile_s`` holds
the first (compiling) call of every measure in the compile modes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from spgnet import SPGNetError
from spgnet.utils.device import resolve_device
from spgnet.utils.torch_utils import count_flops, count_parameters, frozen

MODES = ("fp32", "bf16-cl", "bf16-cl-compile")
IMPLS = ("ours", "reference")
MEASURES = ("train", "fwdbwd", "infer")
ROUTE_CHOICES = ("auto", "conv", "lookup", "shell")  # --routes: auto = the default choice
DEFAULT_SETTINGS = ("deepfashion@256x176", "market@128x64")
COMPILED_ROUTE = "conv"  # what ACE runs under torch.compile (spgnet.models.sean.SemanticCondition)


# --------------------------------------------------------------------------- set-up


def _tiny_preset():
    """``tiny``: the Market structure at toy widths (3 scales, channels 8-16, ACE kernel 3,
    D with 8 filters), for dry runs of the benchmark code (scripts/gpu_check.sh --tiny);
    its numbers mean nothing."""
    import dataclasses

    from spgnet.models.config import model_preset

    cfg = model_preset("market")
    generator = dataclasses.replace(cfg.generator, nf=8, max_nf=16, num_scales=3, num_warp_scales=2,
                                    num_res_blocks=1, style_dim=8, style_nf=4, spade_hidden=8, ace_kernel=3)
    return dataclasses.replace(cfg, generator=generator,
                               discriminator=dataclasses.replace(cfg.discriminator, ndf=8))


BENCH_PRESETS = {"tiny": _tiny_preset}  # presets of the benchmark only, besides the model presets


def bench_preset(name: str):
    """The :class:`~spgnet.models.config.ModelConfig` of a setting's preset."""
    from spgnet.models.config import model_preset

    return BENCH_PRESETS[name]() if name in BENCH_PRESETS else model_preset(name)


def parse_setting(text: str) -> tuple[str, tuple[int, int]]:
    """``'deepfashion@256x176'`` -> (preset, (H, W))."""
    from spgnet.utils.parse import parse_size
    from spgnet.models.config import MODEL_PRESETS

    preset, sep, size = text.partition("@")
    presets = (*MODEL_PRESETS, *BENCH_PRESETS)
    if not sep or preset not in presets:
        raise SPGNetError(f"setting {text!r}: expected PRESET@HxW with PRESET one of {', '.join(presets)}")
    return preset, parse_size(size, f"setting {text!r}")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (what a failed case records)."""
    lines = str(exc).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_reference(path: str | os.PathLike | None = None):
    """The ``ReferenceGenerator`` class: :mod:`spgnet.models.reference` (shipped with the
    package), or the one of another source file ``path`` (e.g. a modified copy)."""
    if path is None:
        from spgnet.models.reference import ReferenceGenerator

        return ReferenceGenerator
    path = Path(path)
    if not path.is_file():
        raise SPGNetError(f"--reference {path}: file not found")
    spec = importlib.util.spec_from_file_location("spgnet_reference_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "ReferenceGenerator"):
        raise SPGNetError(f"--reference {path}: defines no ReferenceGenerator class")
    return module.ReferenceGenerator


def synthetic_inputs(batch: int, size: tuple[int, int], pose_channels: int, seed: int = 0,
                     unique: int = 8) -> dict[str, torch.Tensor]:
    """A realistic stage-2 batch: ``min(batch, unique)`` synthetic pairs (one identity in
    two poses) repeated to ``batch``. Keys: src_image, tgt_image ``(B, 3, H, W)``;
    src_parsing_onehot, tgt_parsing_onehot ``(B, 20, H, W)``; tgt_pose ``(B, C, H, W)`` (30 heat maps + distance
    maps, or 18 disks of radius 8·H/256 for the official presets); flow ``(B, 2, H, W)``;
    vis ``(B, 1, H, W)`` (ground truth of the renderer)."""
    from spgnet.data.synth import ground_truth_flow, render_person, sample_identity, sample_pose
    from spgnet.utils.io import image_to_tensor
    from spgnet.parsing import one_hot
    from spgnet.pose import pose_maps

    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(max(1, min(batch, unique))):
        identity = sample_identity(rng)
        src, tgt = (render_person(identity, sample_pose(rng), size) for _ in range(2))
        flow, vis = ground_truth_flow(src, tgt)
        pairs.append((src, tgt, flow, vis))
    pick = [pairs[i % len(pairs)] for i in range(batch)]
    kp = torch.from_numpy(np.stack([t["keypoints"] for _, t, _, _ in pick]))
    if pose_channels == 30:
        pose = pose_maps(kp, size, kind="heatmap+distance")
    elif pose_channels == 18:
        pose = pose_maps(kp, size, kind="disk", radius=8.0 * size[0] / 256)
    else:
        raise SPGNetError(f"bench: pose_channels {pose_channels} (expected 18 or 30)")
    return {
        "src_image": torch.stack([image_to_tensor(s["image"]) for s, _, _, _ in pick]),
        "tgt_image": torch.stack([image_to_tensor(t["image"]) for _, t, _, _ in pick]),
        "src_parsing_onehot": one_hot(np.stack([s["parsing"] for s, _, _, _ in pick])),
        "tgt_parsing_onehot": one_hot(np.stack([t["parsing"] for _, t, _, _ in pick])),
        "tgt_pose": pose,
        "flow": torch.from_numpy(np.stack([f for _, _, f, _ in pick])),
        "vis": torch.from_numpy(np.stack([v for _, _, _, v in pick])).float()[:, None],
    }


def generator_args(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return x["src_image"], x["src_parsing_onehot"], x["tgt_parsing_onehot"], x["tgt_pose"], x["flow"], x["vis"]


# --------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, warmup: int, steps: int, device: torch.device) -> list[float]:
    """Seconds of ``steps`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def autograd_saved_mb(fn, exclude=(), floating_only: bool = False) -> float:
    """MB of distinct tensor storages autograd saves for backward while ``fn`` runs, not
    counting the storages of ``exclude`` (parameters): the activation memory of a training
    step, the same on any device. ``floating_only``: leave out integer (index) tensors."""
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip and (t.is_floating_point() or not floating_only):
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


def count_gflops(fn) -> float:
    """GFLOP of one call of ``fn`` (:func:`spgnet.utils.torch_utils.count_flops`)."""
    return count_flops(fn) / 1e9


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int | None = None, seconds: float = 1.0) -> float:
    """Measured dense matmul rate of ``device`` in ``dtype`` (n×n @ n×n, TFLOP/s)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    _sync(device)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or count < 2:
        torch.mm(a, b)
        count += 1
        _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - t0) / 1e12


def loader_samples_per_s(size: tuple[int, int], batch: int, workers: int, samples: int,
                         root: str | None = None, pose_kind: str = "heatmap+distance") -> float:
    """samples/s of the training data pipeline (PairDataset + DataLoader, pose maps and
    one-hot parsing made where the default config makes them, flow read from .corr) on
    a synthetic dataset written to a temporary folder (or ``root``)."""
    from spgnet.config import DatasetConfig, PoseConfig
    from spgnet.data.dataset import complete_batch, make_loader

    with tempfile.TemporaryDirectory() as tmp:
        if root is None:
            from spgnet.data.synth import write_synthetic_dataset

            root = str(Path(tmp) / "data")
            write_synthetic_dataset(root, max(2 * batch, 16), 1, size=size, seed=0, progress=False)
        cfg = DatasetConfig(root=root, load_size=list(size), use_flow=True, pose=PoseConfig(kind=pose_kind))
        loader = make_loader(cfg, "train", batch_size=batch, shuffle=True, workers=workers)
        it = iter(loader)
        complete_batch(next(it), cfg)  # warm-up: workers start
        n, t0 = 0, time.perf_counter()
        while n < samples:
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                continue
            complete_batch(b, cfg)  # what the trainer adds on the main process
            n += b["src_image"].shape[0]
        rate = n / (time.perf_counter() - t0)
        del it, loader
        return rate


# --------------------------------------------------------------------------- one case


@dataclass
class CaseResult:
    setting: str
    batch: int
    mode: str
    impl: str
    train_s: float | None = None  # median seconds per training step
    fwdbwd_s: float | None = None  # median seconds per G forward + backward
    infer_images_per_s: float | None = None
    peak_mb: float | None = None
    saved_mb: float | None = None  # tensors autograd keeps for G's backward (activations), batch as given
    compile_s: dict[str, float] = field(default_factory=dict)  # measure -> first (compiling) call, compile modes
    route: str = ""  # the ACE route that ran (ours), "reference" for the reference
    requested_route: str = "auto"  # ours: --routes entry of this row
    error: str = ""  # "measure: Type: message" of what failed (one line each, "; "-joined)
    note: str = ""

    @property
    def train_samples_per_s(self) -> float | None:
        return self.batch / self.train_s if self.train_s else None

    def fail(self, what: str, exc: BaseException) -> None:
        self.error = "; ".join(filter(None, (self.error, f"{what}: {one_line(exc)}")))


def _autocast(device: torch.device, mode: str):
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def make_train_step(generator: nn.Module, discriminator: nn.Module, x: dict[str, torch.Tensor],
                    device: torch.device, mode: str, g_call=None, d_call=None):
    """A closure running one stage-2 training step (see the module docstring). ``g_call`` /
    ``d_call``: what to call instead of the modules (their compiled wrappers)."""
    from spgnet.training.losses import GANLoss, l1

    if g_call is None:  # not `or`: a compiled module's truth value asks for its len()
        g_call = generator
    if d_call is None:
        d_call = discriminator
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-5, betas=(0.5, 0.999))
    gan = GANLoss("vanilla")
    args = generator_args(x)

    def step() -> None:
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        with _autocast(device, mode):
            fake = g_call(*args)
            with frozen(discriminator):
                d_fake = d_call(x["src_image"], fake, x["tgt_pose"])
            loss_g = l1(fake.float(), x["tgt_image"].float()) + 0.01 * gan(d_fake, True, for_discriminator=False)
        loss_g.backward()
        opt_g.step()
        with _autocast(device, mode):
            d_real = d_call(x["src_image"], x["tgt_image"], x["tgt_pose"])
            d_fake = d_call(x["src_image"], fake.detach(), x["tgt_pose"])
            loss_d = 0.5 * (gan(d_real, True) + gan(d_fake, False))
        loss_d.backward()
        opt_d.step()

    return step


def _to_device(x: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.to(device).contiguous(memory_format=fmt) for k, v in x.items()}


def routes_used(generator: nn.Module, args: tuple[torch.Tensor, ...], device: torch.device, mode: str) -> str:
    """The ACE route of every resolution in one forward of ``generator`` (eager, eval mode,
    no gradient: the same choice as in training, which depends on the parsing and the
    device only): ``"shell"``, ``"lookup"``, ``"conv"`` or ``"shell+lookup"`` (by first use)."""
    from spgnet.models.sean import ACE

    seen: list[str] = []
    aces = [m for m in generator.modules() if isinstance(m, ACE)]

    def wrap(ace):
        method = ace.modulation

        def modulation(cond, size, dtype):
            out = method(cond, size, dtype)
            layout = cond.layout(size, ace.semantic.shared[0].kernel_size[0]) if ace.factorized else None
            route = "conv" if layout is None else ("shell" if cond.use_shell(layout) else "lookup")
            if route not in seen:
                seen.append(route)
            return out

        return modulation

    for ace in aces:
        ace.modulation = wrap(ace)
    was = generator.training
    try:
        with torch.no_grad(), _autocast(device, mode):
            generator.eval()(*args)
    finally:
        generator.train(was)
        for ace in aces:
            del ace.modulation  # the class's method again
    return "+".join(seen) if seen else "none (no ACE)"


def _measure(result: CaseResult, what: str, fn, device: torch.device):
    """Run one measurement; an error is recorded in ``result`` (one line) instead of raised."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 — every failure is reported in the table
        result.fail(what, exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def run_case(setting: str, batch: int, mode: str, impl: str, *, state: dict, device: torch.device,
             measures: tuple[str, ...], warmup: int, steps: int, reference_cls, route: str = "auto",
             compile_backend: str = "inductor") -> CaseResult:
    """Build the case's networks (same weights ``state`` for both implementations) and measure.
    Never raises for a failure of the case itself: it is in the result's ``error``."""
    result = CaseResult(setting, batch, mode, impl, requested_route=route if impl == "ours" else "")
    if impl == "reference":
        result.route = "reference"
    if impl == "reference" and reference_cls is None:
        result.note = "reference not requested"
        return result
    if impl == "reference" and mode.endswith("compile"):
        result.note = "n/a: the reference's per-class Python loops"
        return result
    try:
        return _run_case(result, state=state, device=device, measures=measures, warmup=warmup, steps=steps,
                         reference_cls=reference_cls, compile_backend=compile_backend)
    except Exception as exc:  # noqa: BLE001 — the set-up failed: the row says why
        result.fail("setup", exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return result


def _run_case(result: CaseResult, *, state: dict, device: torch.device, measures: tuple[str, ...], warmup: int,
              steps: int, reference_cls, compile_backend: str) -> CaseResult:
    from spgnet.training.losses import l1
    from spgnet.models.discriminator import NLayerDiscriminator
    from spgnet.models.generator import SPGNetGenerator

    setting, batch, mode, impl = result.setting, result.batch, result.mode, result.impl
    preset, size = parse_setting(setting)
    compiled = mode.endswith("compile")
    cfg = bench_preset(preset)
    gen_cfg = cfg.generator
    generator = (SPGNetGenerator(gen_cfg) if impl == "ours" else reference_cls(gen_cfg))
    generator.load_state_dict(state["generator"])
    if impl == "ours":
        generator.ace_route = None if result.requested_route == "auto" else result.requested_route
    disc = NLayerDiscriminator(cfg.discriminator, in_channels=6 + gen_cfg.pose_channels)
    disc.load_state_dict(state["discriminator"])
    channels_last = mode != "fp32"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(device, memory_format=fmt).train()
    disc.to(device, memory_format=fmt).train()
    x = _to_device(state["inputs"][(size, batch)], device, channels_last)
    args = generator_args(x)
    g_call, d_call = generator, disc
    if impl == "ours":
        if compiled:
            result.route = f"{COMPILED_ROUTE} (compiled)"
        else:
            ran = _measure(result, "route", lambda: routes_used(generator, args, device, mode), device)
            if ran is not None:
                result.route = f"{result.requested_route}: {ran}" if result.requested_route == "auto" else ran
    if compiled:
        torch._dynamo.reset()  # every case compiles afresh (no recompile limit reached across cases)
        g_call = torch.compile(generator, backend=compile_backend)
        d_call = torch.compile(disc, backend=compile_backend)

    def timed(name: str, fn) -> float | None:
        """The median of ``steps`` calls; in compile modes the first (compiling) call is timed apart."""
        def run() -> float:
            if compiled:
                t0 = time.perf_counter()
                fn()
                _sync(device)
                result.compile_s[name] = time.perf_counter() - t0
            return statistics.median(time_calls(fn, warmup, steps, device))
        return _measure(result, name, run, device)

    _reset_peak(device)
    if "train" in measures:
        if not compiled:  # compiled graphs save what they choose, out of the hooks' sight

            def g_forward() -> None:
                with _autocast(device, mode):
                    l1(generator(*args).float(), x["tgt_image"].float())

            result.saved_mb = _measure(
                result, "saved", lambda: autograd_saved_mb(g_forward, exclude=tuple(generator.parameters())), device)
        step = _measure(result, "train", lambda: make_train_step(generator, disc, x, device, mode, g_call, d_call),
                        device)
        if step is not None:
            result.train_s = timed("train", step)
    if "fwdbwd" in measures:

        def fwdbwd() -> None:
            generator.zero_grad(set_to_none=True)
            with _autocast(device, mode):
                loss = l1(g_call(*args).float(), x["tgt_image"].float())
            loss.backward()

        result.fwdbwd_s = timed("fwdbwd", fwdbwd)
    if "infer" in measures:
        generator.eval()

        def infer() -> None:
            with torch.no_grad(), _autocast(device, mode):
                g_call(*args)

        seconds = timed("infer", infer)
        result.infer_images_per_s = batch / seconds if seconds else None
        generator.train()
    result.peak_mb = _peak_mb(device)
    return result


# --------------------------------------------------------------------------- the run


@dataclass
class BenchReport:
    device: str
    torch_version: str
    threads: int
    load_average: tuple[float, float] | None  # 1-min load average at start and end (Unix)
    matmul_tflops: dict[str, float] = field(default_factory=dict)  # "fp32" / "bf16"
    models: dict[str, dict] = field(default_factory=dict)  # setting -> params / GFLOP
    loader: dict[str, float] = field(default_factory=dict)  # "setting|batch" -> samples/s
    cases: list[CaseResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # what failed outside the cases (matmul, loader)
    command: str = ""

    def achieved_tflops(self, case: CaseResult) -> float | None:
        """Model TFLOP/s of a case's training step (counted FLOPs per sample × batch / time;
        ours on a forced or compiled route counts that route's FLOPs)."""
        key = f"train_gflop_{case.impl}"
        if case.impl == "ours" and case.requested_route not in ("", "auto"):
            key += f"_{case.requested_route}"
        flops = self.models.get(case.setting, {}).get(key)
        return flops * case.batch / case.train_s / 1e3 if flops and case.train_s else None

    def to_json(self) -> str:
        data = asdict(self)
        for case, raw in zip(self.cases, data["cases"]):
            raw["train_samples_per_s"] = case.train_samples_per_s
            raw["train_tflops"] = self.achieved_tflops(case)
        return json.dumps(data, indent=2)


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU: {cpu}, {os.cpu_count()} logical cores"


def plan_cases(modes, impls, routes) -> list[tuple[str, str, str]]:
    """``(mode, impl, route)`` of every case of one (setting, batch), in table order: per
    mode ours on each route then the reference; a compile mode runs ours on the conv route
    only (:data:`COMPILED_ROUTE`), and its eager twin (the same mode without compile, conv
    route) is added right before it when not already planned."""
    cases: list[tuple[str, str, str]] = []
    for mode in modes:
        compiled = mode.endswith("compile")
        if compiled and "ours" in impls:
            twin = (mode[: -len("-compile")], "ours", COMPILED_ROUTE)
            if twin not in cases:
                cases.append(twin)
        for impl in impls:
            if impl == "ours":
                for route in ((COMPILED_ROUTE,) if compiled else routes):
                    if (mode, impl, route) not in cases:
                        cases.append((mode, impl, route))
            else:
                cases.append((mode, impl, ""))
    return cases


def run_bench(settings=DEFAULT_SETTINGS, batches=(4, 32), modes=("fp32", "bf16-cl"), impls=IMPLS,
              measures=MEASURES, device: str = "auto", warmup: int = 1, steps: int = 3, flops: bool = True,
              loader_workers: int = 2, loader_samples: int = 64, reference: str | None = None,
              seed: int = 0, matmul_seconds: float = 1.0, routes=("auto",), compile_backend: str = "inductor",
              on_update=None, deadline: float | None = None, log=print) -> BenchReport:
    """Measure every (setting, batch, mode, impl, route) case; see the module docstring.
    ``on_update(report)`` runs after each case (and after each setting's information).
    ``deadline`` (a ``time.monotonic()`` value): cases not started by then are listed as
    not run (a time budget: scripts/gpu_check.sh)."""
    from spgnet.models.discriminator import NLayerDiscriminator
    from spgnet.models.generator import SPGNetGenerator

    for what, values, allowed in (("mode", modes, MODES), ("implementation", impls, IMPLS),
                                  ("measure", measures, MEASURES), ("--routes", routes, ROUTE_CHOICES)):
        for value in values:
            if value not in allowed:
                raise SPGNetError(f"{what} {value!r}: choose from {', '.join(allowed)}")
    for setting in settings:
        parse_setting(setting)
    dev = resolve_device(device, what="--device")
    reference_cls = load_reference(reference) if "reference" in impls else None
    update = on_update or (lambda report: None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = BenchReport(_describe(dev), torch.__version__, torch.get_num_threads(), None)
    log(f"device: {report.device}; torch {report.torch_version}; {report.threads} threads")
    if dev.type == "cpu" and load is not None and load > (os.cpu_count() or 1) - 0.5:
        log(f"warning: load average {load:.2f} on {os.cpu_count()} cores: other processes compete for the CPU, "
            "timings will be slow and noisy (OpenMP threads wait for each other); consider --threads 1")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        try:
            report.matmul_tflops[name] = matmul_tflops(dev, dtype, seconds=matmul_seconds)
            log(f"matmul {name}: {report.matmul_tflops[name]:.2f} TFLOP/s")
        except Exception as exc:  # noqa: BLE001
            report.errors[f"matmul {name}"] = one_line(exc)
            log(f"matmul {name}: failed: {one_line(exc)}")
    update(report)

    for setting in settings:
        preset, size = parse_setting(setting)
        cfg = bench_preset(preset)
        torch.manual_seed(seed)
        generator = SPGNetGenerator(cfg.generator)
        disc = NLayerDiscriminator(cfg.discriminator, in_channels=6 + cfg.generator.pose_channels)
        state = {"generator": {k: v.clone() for k, v in generator.state_dict().items()},
                 "discriminator": {k: v.clone() for k, v in disc.state_dict().items()},
                 "inputs": {(size, b): synthetic_inputs(b, size, cfg.generator.pose_channels, seed) for b in batches}}
        info = {"params_g": count_parameters(generator), "params_d": count_parameters(disc)}
        report.models[setting] = info
        if flops:
            forced = sorted({route for _, impl, route in plan_cases(modes, impls, routes)
                             if impl == "ours" and route != "auto"})
            try:
                info.update(_model_info(cfg, size, seed, generator, disc, state, reference_cls, impls, forced,
                                        auto_route=None if dev.type == "cpu" else "lookup"))
            except Exception as exc:  # noqa: BLE001 — the cases still run
                info["error"] = one_line(exc)
        log(f"{setting}: {json.dumps(info)}")
        generator = disc = None  # free them before the cases
        if loader_workers >= 0 and loader_samples > 0:
            kind = "heatmap+distance" if cfg.generator.pose_channels == 30 else "disk"
            for b in batches:
                try:
                    rate = loader_samples_per_s(size, b, loader_workers, max(loader_samples, 2 * b), pose_kind=kind)
                except Exception as exc:  # noqa: BLE001
                    report.errors[f"loader {setting}|{b}"] = one_line(exc)
                    log(f"{setting} loader batch {b}: failed: {one_line(exc)}")
                    continue
                report.loader[f"{setting}|{b}"] = rate
                log(f"{setting} loader batch {b}: {rate:.1f} samples/s ({loader_workers} workers)")
        update(report)
        for batch in batches:
            for mode, impl, route in plan_cases(modes, impls, routes):
                if deadline is not None and time.monotonic() > deadline:
                    case = CaseResult(setting, batch, mode, impl, requested_route=route,
                                      note="not run: the time budget was spent")
                else:
                    case = run_case(setting, batch, mode, impl, state=state, device=dev, measures=tuple(measures),
                                    warmup=warmup, steps=steps, reference_cls=reference_cls, route=route or "auto",
                                    compile_backend=compile_backend)
                report.cases.append(case)
                compile_note = "".join(f", compile {k} {v:.1f} s" for k, v in case.compile_s.items())
                log(f"{setting} batch {batch} {mode} {impl} [{case.route}]: train {_fmt(case.train_s, 's')}, "
                    f"fwd+bwd {_fmt(case.fwdbwd_s, 's')}, infer {_fmt(case.infer_images_per_s, 'img/s')}, "
                    f"peak {_fmt(case.peak_mb, 'MB', 0)}{compile_note}"
                    + (f"; FAILED {case.error}" if case.error else "") + (f" {case.note}" if case.note else ""))
                update(report)
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report.load_average = (load, end) if load is not None else None
    update(report)
    return report


def _model_info(cfg, size, seed, generator, disc, state, reference_cls, impls, forced_routes=(),
                auto_route: str | None = None) -> dict:
    """GFLOP of each network and the outputs' agreement (see the module docstring), counted on
    the CPU. ``auto_route``: the route the benchmark's device takes by default (the CPU
    chooses per resolution; a GPU takes ``lookup``); ``forced_routes``: routes of ours whose
    training-step FLOPs are counted too (``train_gflop_ours_<route>``)."""
    info: dict = {}
    generator.ace_route = auto_route
    # one image, eval mode (running statistics: both see the same normalisation),
    # same noise: the FLOPs of each, and how far apart their outputs are
    one = synthetic_inputs(1, size, cfg.generator.pose_channels, seed)
    outputs = {}

    def forward(net, key):
        torch.manual_seed(seed)
        outputs[key] = net.eval()(*generator_args(one))

    ref = None
    with torch.no_grad():
        info["gflop_ours"] = count_gflops(lambda: forward(generator, "ours"))
        info["gflop_discriminator"] = count_gflops(lambda: disc(one["src_image"], one["tgt_image"], one["tgt_pose"]))
        if reference_cls is not None:
            ref = reference_cls(cfg.generator)
            ref.load_state_dict(state["generator"])
            info["gflop_reference"] = count_gflops(lambda: forward(ref, "reference"))
            a, b = outputs["ours"], outputs["reference"]
            info["max_rel_err"] = float((a - b).abs().max() / b.abs().max())
    # one training step per sample (G and D forward + backward; optimizer FLOPs are
    # not counted): the numerator of the achieved TFLOP/s of each case
    for impl in impls:
        net = generator if impl == "ours" else ref
        if net is not None:
            step = make_train_step(net.train(), disc, one, torch.device("cpu"), "fp32")
            info[f"train_gflop_{impl}"] = count_gflops(step)
    if "ours" in impls:
        for route in forced_routes:
            generator.ace_route = route
            step = make_train_step(generator.train(), disc, one, torch.device("cpu"), "fp32")
            info[f"train_gflop_ours_{route}"] = count_gflops(step)
    generator.ace_route = None
    return info


# --------------------------------------------------------------------------- what each step bought

ABLATION_STEPS = (
    ("reference", "official algorithm: loops over batch × classes, masked scatter, convs over the 128-channel "
                  "style map, separate γ/β convs"),
    ("plain", "vectorised, no Python loops; style convs still over the 128-channel map "
              "(factorized_style_conv=False); fused γ/β convs with the blend folded in"),
    ("conv", "+ style identity: style convs over the 20 class masks with per-sample kernels (grouped conv)"),
    ("lookup", "+ class-window look-ups for every conv over the one-hot (style and SPADE's first conv)"),
    ("shell", "+ SPADE γ/β conv evaluated near class borders only (one GEMM), per-class constants elsewhere"),
)


def route_ablation(setting: str, batch: int, *, device: str = "auto", warmup: int = 1, steps: int = 2,
                   reference: str | None = None, include_reference: bool = True, seed: int = 0,
                   log=print) -> list[dict]:
    """GFLOP per forward per image and G forward+backward seconds at ``batch`` (fp32, eager)
    for each step of :data:`ABLATION_STEPS`, same weights and inputs."""
    import dataclasses

    from spgnet.training.losses import l1
    from spgnet.models.generator import SPGNetGenerator

    preset, size = parse_setting(setting)
    dev = resolve_device(device, what="--device")
    cfg = bench_preset(preset).generator
    torch.manual_seed(seed)
    state = SPGNetGenerator(cfg).state_dict()
    x = _to_device(synthetic_inputs(batch, size, cfg.pose_channels, seed), dev, False)
    one = _to_device(synthetic_inputs(1, size, cfg.pose_channels, seed), dev, False)
    reference_cls = load_reference(reference) if include_reference else None
    rows = []
    for name, description in ABLATION_STEPS:
        if name == "reference":
            if reference_cls is None:
                continue
            net = reference_cls(cfg)
        else:
            net = SPGNetGenerator(dataclasses.replace(cfg, factorized_style_conv=name != "plain"))
            net.ace_route = None if name == "plain" else name
        net.load_state_dict(state)
        net.to(dev).train()
        with torch.no_grad():
            gflop = count_gflops(lambda: net(*generator_args(one)))

        def fwdbwd() -> None:
            net.zero_grad(set_to_none=True)
            l1(net(*generator_args(x)), x["tgt_image"]).backward()

        seconds = statistics.median(time_calls(fwdbwd, warmup, steps, dev))
        rows.append({"step": name, "what": description, "gflop": gflop, "fwdbwd_s": seconds})
        log(f"{setting} batch {batch} {name}: {gflop:.1f} GFLOP/forward/image, forward+backward {seconds:.2f} s")
        net = None  # free it before the next step's network (not `del`: the closures above name it)
    return rows


def format_ablation(rows: list[dict], setting: str, batch: int) -> str:
    first = rows[0]
    lines = [f"| step ({setting}, batch {batch}, fp32) | GFLOP / forward / image | G forward+backward (s) "
             f"| vs {first['step']}: FLOPs | time |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| **{r['step']}**: {r['what']} | {r['gflop']:.1f} | {r['fwdbwd_s']:.2f} | "
                     f"{first['gflop'] / r['gflop']:.2f}× fewer | {first['fwdbwd_s'] / r['fwdbwd_s']:.2f}× faster |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- tables


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def _ratio(ours, ref, higher_is_better: bool) -> str:
    if not ours or not ref:
        return "—"
    return f"{(ours / ref if higher_is_better else ref / ours):.2f}×"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(report: BenchReport) -> str:
    """Markdown tables: models (params, GFLOP) and per-case timings with the ratio ours/reference;
    every row names its ACE route, the compile time of each measure and, for a case that
    failed, what failed (one line)."""
    lines = [f"Device: {report.device}; torch {report.torch_version}, {report.threads} threads. "
             f"Measured matmul rate: " + (", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in report.matmul_tflops.items())
                                          or "—")
             + "." + (f" 1-min load average {report.load_average[0]:.2f} at start, {report.load_average[1]:.2f} "
                      "at end." if report.load_average else "")
             + (f" Command: `{report.command}`." if report.command else ""), ""]
    lines += ["| setting | G params | D params | G GFLOP/forward/image: ours | reference | ratio | D GFLOP "
              "| max rel. error ours vs reference (fp32, eval) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for setting, info in report.models.items():
        err = info.get("max_rel_err")
        lines.append(f"| {setting} | {info['params_g']:,} | {info['params_d']:,} | "
                     f"{_fmt(info.get('gflop_ours'), '', 1)} | {_fmt(info.get('gflop_reference'), '', 1)} | "
                     f"{_ratio(info.get('gflop_ours'), info.get('gflop_reference'), False)} | "
                     f"{_fmt(info.get('gflop_discriminator'), '', 1)} | {'—' if err is None else f'{err:.1e}'} |"
                     + (f" FLOP count failed: {_cell(info['error'])}" if info.get("error") else ""))
    lines += ["", "| setting | batch | mode | impl | ACE route | train step (s) | train samples/s | loader samples/s "
              "| train TFLOP/s (% of matmul) | G fwd+bwd (s) | inference images/s | peak memory (MB) "
              "| G activations saved (MB) | compile (s) | error / note |",
              "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    ours_rows = {}
    for c in report.cases:  # the ratio compares the reference with ours on the default route
        key = (c.setting, c.batch, c.mode)
        if c.impl == "ours" and not c.error and (key not in ours_rows or c.requested_route == "auto"):
            ours_rows[key] = c
    for c in report.cases:
        loader = report.loader.get(f"{c.setting}|{c.batch}")
        tflops = report.achieved_tflops(c)
        rate = report.matmul_tflops.get("fp32" if c.mode == "fp32" else "bf16")
        util = f"{tflops:.3f} ({100 * tflops / rate:.0f} %)" if tflops and rate else "—"
        compile_s = ", ".join(f"{k} {v:.1f}" for k, v in c.compile_s.items()) or "—"
        remark = "; ".join(filter(None, (f"**failed** {c.error}" if c.error else "", c.note))) or ""
        lines.append(f"| {c.setting} | {c.batch} | {c.mode} | {c.impl} | {_cell(c.route or '—')} | {_fmt(c.train_s)} | "
                     f"{_fmt(c.train_samples_per_s)} | {_fmt(loader, '', 1)} | {util} | {_fmt(c.fwdbwd_s)} | "
                     f"{_fmt(c.infer_images_per_s)} | {_fmt(c.peak_mb, '', 0)} | {_fmt(c.saved_mb, '', 0)} | "
                     f"{compile_s} | {_cell(remark)} |")
        ours = ours_rows.get((c.setting, c.batch, c.mode))
        if c.impl == "reference" and ours is not None and not c.note and not c.error:
            ref, c = c, ours
            lines.append(f"| | | | **ours vs reference** | {_cell(c.route)} | **{_ratio(c.train_s, ref.train_s, False)}** "
                         f"| | | | **{_ratio(c.fwdbwd_s, ref.fwdbwd_s, False)}** | "
                         f"**{_ratio(c.infer_images_per_s, ref.infer_images_per_s, True)}** | "
                         f"{_ratio(c.peak_mb, ref.peak_mb, False)} | {_ratio(c.saved_mb, ref.saved_mb, False)} | | |")
    if report.errors:
        lines += ["", "Failed outside the cases: " + "; ".join(f"{k}: {_cell(v)}" for k, v in report.errors.items())]
    return "\n".join(lines)


__all__ = ["MODES", "IMPLS", "MEASURES", "ROUTE_CHOICES", "DEFAULT_SETTINGS", "COMPILED_ROUTE", "BENCH_PRESETS",
           "CaseResult", "BenchReport", "run_bench", "run_case", "plan_cases", "routes_used", "bench_preset", "one_line",
           "ABLATION_STEPS", "route_ablation", "format_ablation",
           "format_markdown", "synthetic_inputs", "load_reference", "count_gflops", "matmul_tflops",
           "loader_samples_per_s", "make_train_step", "time_calls", "parse_setting", "autograd_saved_mb"]
