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
DEFAULT_SETTINGS = ("deepfashion@256x176", "market@128x64")


# --------------------------------------------------------------------------- set-up


def parse_setting(text: str) -> tuple[str, tuple[int, int]]:
    """``'deepfashion@256x176'`` -> (preset, (H, W))."""
    from spgnet.utils.parse import parse_size
    from spgnet.models.config import MODEL_PRESETS

    preset, sep, size = text.partition("@")
    if not sep or preset not in MODEL_PRESETS:
        raise SPGNetError(f"setting {text!r}: expected PRESET@HxW with PRESET one of {', '.join(MODEL_PRESETS)}")
    return preset, parse_size(size, f"setting {text!r}")


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
    compile_s: float | None = None  # first (compiling) call, compile mode only
    note: str = ""

    @property
    def train_samples_per_s(self) -> float | None:
        return self.batch / self.train_s if self.train_s else None


def _autocast(device: torch.device, mode: str):
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def make_train_step(generator: nn.Module, discriminator: nn.Module, x: dict[str, torch.Tensor],
                    device: torch.device, mode: str, g_call=None, d_call=None):
    """A closure running one stage-2 training step (see the module docstring)."""
    from spgnet.training.losses import GANLoss, l1

    g_call = g_call or generator
    d_call = d_call or discriminator
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


def run_case(setting: str, batch: int, mode: str, impl: str, *, state: dict, device: torch.device,
             measures: tuple[str, ...], warmup: int, steps: int, reference_cls) -> CaseResult:
    """Build the case's networks (same weights ``state`` for both implementations) and measure."""
    from spgnet.training.losses import l1
    from spgnet.models.config import model_preset
    from spgnet.models.discriminator import NLayerDiscriminator
    from spgnet.models.generator import SPGNetGenerator

    preset, size = parse_setting(setting)
    result = CaseResult(setting, batch, mode, impl)
    if impl == "reference" and reference_cls is None:
        result.note = "reference not requested"
        return result
    if impl == "reference" and mode.endswith("compile"):
        result.note = "n/a: the reference's per-class Python loops"
        return result
    cfg = model_preset(preset)
    gen_cfg = cfg.generator
    generator = (SPGNetGenerator(gen_cfg) if impl == "ours" else reference_cls(gen_cfg))
    generator.load_state_dict(state["generator"])
    disc = NLayerDiscriminator(in_channels=6 + gen_cfg.pose_channels)
    disc.load_state_dict(state["discriminator"])
    channels_last = mode != "fp32"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(device, memory_format=fmt).train()
    disc.to(device, memory_format=fmt).train()
    x = _to_device(state["inputs"][(size, batch)], device, channels_last)
    g_call, d_call = generator, disc
    if mode.endswith("compile"):
        g_call, d_call = torch.compile(generator), torch.compile(disc)

    _reset_peak(device)
    if "train" in measures:
        if not mode.endswith("compile"):  # compiled graphs save what they choose, out of the hooks' sight

            def g_forward() -> None:
                with _autocast(device, mode):
                    l1(generator(*generator_args(x)).float(), x["tgt_image"].float())

            result.saved_mb = autograd_saved_mb(g_forward, exclude=tuple(generator.parameters()))
        step = make_train_step(generator, disc, x, device, mode, g_call, d_call)
        if mode.endswith("compile"):
            t0 = time.perf_counter()
            step()
            _sync(device)
            result.compile_s = time.perf_counter() - t0
        result.train_s = statistics.median(time_calls(step, warmup, steps, device))
    if "fwdbwd" in measures:
        args = generator_args(x)

        def fwdbwd() -> None:
            generator.zero_grad(set_to_none=True)
            with _autocast(device, mode):
                loss = l1(g_call(*args).float(), x["tgt_image"].float())
            loss.backward()

        result.fwdbwd_s = statistics.median(time_calls(fwdbwd, warmup, steps, device))
    if "infer" in measures:
        generator.eval()
        args = generator_args(x)

        def infer() -> None:
            with torch.no_grad(), _autocast(device, mode):
                g_call(*args)

        result.infer_images_per_s = batch / statistics.median(time_calls(infer, warmup, steps, device))
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
    command: str = ""

    def achieved_tflops(self, case: CaseResult) -> float | None:
        """Model TFLOP/s of a case's training step (counted FLOPs per sample × batch / time)."""
        flops = self.models.get(case.setting, {}).get(f"train_gflop_{case.impl}")
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


def run_bench(settings=DEFAULT_SETTINGS, batches=(4, 32), modes=("fp32", "bf16-cl"), impls=IMPLS,
              measures=MEASURES, device: str = "auto", warmup: int = 1, steps: int = 3, flops: bool = True,
              loader_workers: int = 2, loader_samples: int = 64, reference: str | None = None,
              seed: int = 0, matmul_seconds: float = 1.0, log=print) -> BenchReport:
    """Measure every (setting, batch, mode, impl) case; see the module docstring."""
    from spgnet.models.config import model_preset
    from spgnet.models.discriminator import NLayerDiscriminator
    from spgnet.models.generator import SPGNetGenerator

    for mode in modes:
        if mode not in MODES:
            raise SPGNetError(f"mode {mode!r}: choose from {', '.join(MODES)}")
    for impl in impls:
        if impl not in IMPLS:
            raise SPGNetError(f"implementation {impl!r}: choose from {', '.join(IMPLS)}")
    for m in measures:
        if m not in MEASURES:
            raise SPGNetError(f"measure {m!r}: choose from {', '.join(MEASURES)}")
    for setting in settings:
        parse_setting(setting)
    dev = resolve_device(device, what="--device")
    reference_cls = load_reference(reference) if "reference" in impls else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = BenchReport(_describe(dev), torch.__version__, torch.get_num_threads(), None)
    log(f"device: {report.device}; torch {report.torch_version}; {report.threads} threads")
    if dev.type == "cpu" and load is not None and load > (os.cpu_count() or 1) - 0.5:
        log(f"warning: load average {load:.2f} on {os.cpu_count()} cores: other processes compete for the CPU, "
            "timings will be slow and noisy (OpenMP threads wait for each other); consider --threads 1")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        report.matmul_tflops[name] = matmul_tflops(dev, dtype, seconds=matmul_seconds)
        log(f"matmul {name}: {report.matmul_tflops[name]:.2f} TFLOP/s")

    for setting in settings:
        preset, size = parse_setting(setting)
        cfg = model_preset(preset)
        torch.manual_seed(seed)
        generator = SPGNetGenerator(cfg.generator)
        disc = NLayerDiscriminator(in_channels=6 + cfg.generator.pose_channels)
        state = {"generator": {k: v.clone() for k, v in generator.state_dict().items()},
                 "discriminator": {k: v.clone() for k, v in disc.state_dict().items()},
                 "inputs": {(size, b): synthetic_inputs(b, size, cfg.generator.pose_channels, seed) for b in batches}}
        info = {"params_g": count_parameters(generator), "params_d": count_parameters(disc)}
        if flops:
            # one image, eval mode (running statistics: both see the same normalisation),
            # same noise: the FLOPs of each, and how far apart their outputs are
            one = synthetic_inputs(1, size, cfg.generator.pose_channels, seed)
            outputs = {}

            def forward(net, key):
                torch.manual_seed(seed)
                outputs[key] = net.eval()(*generator_args(one))

            with torch.no_grad():
                info["gflop_ours"] = count_gflops(lambda: forward(generator, "ours"))
                info["gflop_discriminator"] = count_gflops(
                    lambda: disc(one["src_image"], one["tgt_image"], one["tgt_pose"]))
                if reference_cls is not None:
                    ref = reference_cls(cfg.generator)
                    ref.load_state_dict(state["generator"])
                    info["gflop_reference"] = count_gflops(lambda: forward(ref, "reference"))
                    a, b = outputs["ours"], outputs["reference"]
                    info["max_rel_err"] = float((a - b).abs().max() / b.abs().max())
            # one training step per sample (G and D forward + backward; optimizer FLOPs are
            # not counted): the numerator of the achieved TFLOP/s of each case
            for impl in impls:
                net = generator if impl == "ours" else (ref if reference_cls is not None else None)
                if net is not None:
                    step = make_train_step(net.train(), disc, one, torch.device("cpu"), "fp32")
                    info[f"train_gflop_{impl}"] = count_gflops(step)
            if reference_cls is not None:
                del ref
        report.models[setting] = info
        log(f"{setting}: {json.dumps(info)}")
        del generator, disc
        if loader_workers >= 0 and loader_samples > 0:
            kind = "heatmap+distance" if cfg.generator.pose_channels == 30 else "disk"
            for b in batches:
                rate = loader_samples_per_s(size, b, loader_workers, max(loader_samples, 2 * b), pose_kind=kind)
                report.loader[f"{setting}|{b}"] = rate
                log(f"{setting} loader batch {b}: {rate:.1f} samples/s ({loader_workers} workers)")
        for batch in batches:
            for mode in modes:
                for impl in impls:
                    case = run_case(setting, batch, mode, impl, state=state, device=dev, measures=tuple(measures),
                                    warmup=warmup, steps=steps, reference_cls=reference_cls)
                    report.cases.append(case)
                    log(f"{setting} batch {batch} {mode} {impl}: train {_fmt(case.train_s, 's')}, "
                        f"fwd+bwd {_fmt(case.fwdbwd_s, 's')}, infer {_fmt(case.infer_images_per_s, 'img/s')}, "
                        f"peak {_fmt(case.peak_mb, 'MB', 0)} {case.note}")
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report.load_average = (load, end) if load is not None else None
    return report


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
    from spgnet.models.config import model_preset
    from spgnet.models.generator import SPGNetGenerator

    preset, size = parse_setting(setting)
    dev = resolve_device(device, what="--device")
    cfg = model_preset(preset).generator
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
        del net
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


def format_markdown(report: BenchReport) -> str:
    """Markdown tables: models (params, GFLOP) and per-case timings with the ratio ours/reference."""
    lines = [f"Device: {report.device}; torch {report.torch_version}, {report.threads} threads. "
             f"Measured matmul rate: " + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in report.matmul_tflops.items())
             + "." + (f" 1-min load average {report.load_average[0]:.2f} at start, {report.load_average[1]:.2f} "
                      "at end." if report.load_average else ""), ""]
    lines += ["| setting | G params | D params | G GFLOP/forward/image: ours | reference | ratio | D GFLOP "
              "| max rel. error ours vs reference (fp32, eval) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for setting, info in report.models.items():
        err = info.get("max_rel_err")
        lines.append(f"| {setting} | {info['params_g']:,} | {info['params_d']:,} | "
                     f"{_fmt(info.get('gflop_ours'), '', 1)} | {_fmt(info.get('gflop_reference'), '', 1)} | "
                     f"{_ratio(info.get('gflop_ours'), info.get('gflop_reference'), False)} | "
                     f"{_fmt(info.get('gflop_discriminator'), '', 1)} | {'—' if err is None else f'{err:.1e}'} |")
    lines += ["", "| setting | batch | mode | impl | train step (s) | train samples/s | loader samples/s "
              "| train TFLOP/s (% of matmul) | G fwd+bwd (s) | inference images/s | peak memory (MB) "
              "| G activations saved (MB) |",
              "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    by_key = {(c.setting, c.batch, c.mode, c.impl): c for c in report.cases}
    for c in report.cases:
        loader = report.loader.get(f"{c.setting}|{c.batch}")
        tflops = report.achieved_tflops(c)
        rate = report.matmul_tflops.get("fp32" if c.mode == "fp32" else "bf16")
        util = f"{tflops:.3f} ({100 * tflops / rate:.0f} %)" if tflops and rate else "—"
        lines.append(f"| {c.setting} | {c.batch} | {c.mode} | {c.impl} | {_fmt(c.train_s)} | "
                     f"{_fmt(c.train_samples_per_s)} | {_fmt(loader, '', 1)} | {util} | {_fmt(c.fwdbwd_s)} | "
                     f"{_fmt(c.infer_images_per_s)} | {_fmt(c.peak_mb, '', 0)} | {_fmt(c.saved_mb, '', 0)} |"
                     + (f" {c.note}" if c.note else ""))
        ours = by_key.get((c.setting, c.batch, c.mode, "ours"))
        if c.impl == "reference" and ours is not None and not c.note:
            ref, c = c, ours
            lines.append(f"| | | | **ours vs reference** | **{_ratio(c.train_s, ref.train_s, False)}** | | | | "
                         f"**{_ratio(c.fwdbwd_s, ref.fwdbwd_s, False)}** | "
                         f"**{_ratio(c.infer_images_per_s, ref.infer_images_per_s, True)}** | "
                         f"{_ratio(c.peak_mb, ref.peak_mb, False)} | {_ratio(c.saved_mb, ref.saved_mb, False)} |")
    return "\n".join(lines)


__all__ = ["MODES", "IMPLS", "MEASURES", "DEFAULT_SETTINGS", "CaseResult", "BenchReport", "run_bench", "run_case",
           "ABLATION_STEPS", "route_ablation", "format_ablation",
           "format_markdown", "synthetic_inputs", "load_reference", "count_gflops", "matmul_tflops",
           "loader_samples_per_s", "make_train_step", "time_calls", "parse_setting", "autograd_saved_mb"]
