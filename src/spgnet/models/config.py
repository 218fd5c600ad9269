"""Model configuration: generator (docs/design.md §8), SPATN (§6) and discriminator (§9).

Plain dataclasses (no torch import) so that :mod:`spgnet.config` can embed them in the
top-level ``Config``; values are checked when a dataclass is built, and a bad value
raises :class:`~spgnet.SPGNetError` naming the key (``model.generator.variant``).

Presets (:data:`MODEL_PRESETS`, :func:`model_preset`):

* ``deepfashion`` / ``market`` — the paper's setting: 30 pose channels (18 heat maps +
  12 limb distance maps), otherwise the official structure for that dataset.
* ``official-deepfashion`` / ``official-market`` — exactly the official release's
  generators (18 pose channels, binary disks), whose weights load through
  :mod:`spgnet.models.official`: 87,795,177 and 30,914,805 trainable parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from spgnet import SPGNetError

# Paper Table 3 ablations, from the strongest to the weakest model.
VARIANTS: tuple[str, ...] = ("full", "sean-only", "spade", "baseline-s", "baseline")
NUM_PARSING_CLASSES = 20  # CIHP labels (spgnet.parsing.NUM_CLASSES; not imported: no torch here)
UPSAMPLE_NORMS: tuple[str, ...] = ("before", "after")  # model.generator.upsample_norm
PAD_MODES: tuple[str, ...] = ("replicate", "reflect", "zeros")  # model.generator.pad_mode
NOISE_LAYOUTS: tuple[str, ...] = ("device", "official")  # model.generator.noise_layout
SPATN_INPUTS: tuple[str, ...] = ("parsing", "image")  # model.spatn.input
SPATN_NORMS: tuple[str, ...] = ("batch", "instance")  # model.spatn.norm
DISCRIMINATOR_NORMS: tuple[str, ...] = ("batch", "instance", "none")  # model.discriminator.norm


# --------------------------------------------------------------------------- value checks
# The one set of checks of every config dataclass (these and those of spgnet.config, which
# imports them from here: this module is the leaf of the two, so no import cycle). Each
# raises ConfigValueError with one line "<full.dotted.key>: <what is wrong and what is
# allowed>"; the number/int/str checks return the value to store (e.g. a float).


class ConfigValueError(SPGNetError):
    """A config value of the wrong type or outside its allowed values; the message is one
    line that starts with the value's full dotted key (``train.scheme: ...``)."""


def fail(key: str, message: str) -> None:
    raise ConfigValueError(f"{key}: {message}")


def check(condition: bool, key: str, message: str) -> None:
    if not condition:
        fail(key, message)


def check_choice(value: Any, key: str, choices: Sequence[str]) -> str:
    """``value`` must be one of the strings ``choices``."""
    check(isinstance(value, str) and value in choices, key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def check_bool(value: Any, key: str) -> bool:
    check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
    return value


def check_str(value: Any, key: str, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    check(isinstance(value, str), key, f"expected a string{' or null' if optional else ''}, got {value!r}")
    return value


def check_int(value: Any, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) in ``[minimum, maximum]``."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer in {minimum}..{maximum}"
    elif minimum is not None:
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    else:
        allowed = "an integer" if maximum is None else f"an integer <= {maximum}"
    ok = (isinstance(value, int) and not isinstance(value, bool)
          and (minimum is None or value >= minimum) and (maximum is None or value <= maximum))
    check(ok, key, f"expected {allowed}, got {value!r}")
    return int(value)


def _range_text(gt, ge, lt, le) -> str:
    low = f"({gt}" if gt is not None else f"[{ge}" if ge is not None else None
    high = f"{lt})" if lt is not None else f"{le}]" if le is not None else None
    if low and high:
        return f" in {low}, {high}"
    if low:
        return f" > {gt}" if gt is not None else f" >= {ge}"
    if high:
        return f" < {lt}" if lt is not None else f" <= {le}"
    return ""


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def check_number(value: Any, key: str, *, gt: float | None = None, ge: float | None = None,
                 lt: float | None = None, le: float | None = None) -> float:
    """A finite number (an int is fine, a bool is not) in the given range, as a float.

    A numeric string is converted: YAML 1.1 (PyYAML) reads ``2e-4`` (no dot) as the
    string ``"2e-4"``, and configs and ``--set train.lr_g=2e-4`` are written that way.
    """
    allowed = f"expected a finite number{_range_text(gt, ge, lt, le)}, got {value!r}"
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    check(isinstance(value, (int, float)) and not isinstance(value, bool), key, allowed)
    value = float(value)
    check(math.isfinite(value) and (gt is None or value > gt) and (ge is None or value >= ge)
          and (lt is None or value < lt) and (le is None or value <= le), key, allowed)
    return value


def check_list(value: Any, key: str, length: int, what: str, optional: bool = False) -> list | None:
    """A list (or tuple) of ``length`` items, described to the user as ``what``; the caller
    checks the items (keys ``key[i]``)."""
    if optional and value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == length
    check(ok, key, f"expected {what}{' or null' if optional else ''}, got {value!r}")
    return list(value)


def check_positive_ints(prefix: str, obj: Any, names: Sequence[str]) -> None:
    """Fields ``names`` of ``obj`` are integers >= 1 (keys ``prefix.name``)."""
    for name in names:
        check_int(getattr(obj, name), f"{prefix}.{name}", minimum=1)


@dataclass
class GeneratorConfig:
    """Stage-2 generator (docs/design.md §8). Defaults: the paper's DeepFashion model at 256 px.

    ``variant`` selects a paper Table 3 ablation:

    * ``full`` — ACE (SEAN style branch + SPADE semantic branch) and feature deformation.
    * ``sean-only`` — full ACE, no feature deformation (no flow needed).
    * ``spade`` — semantic branch only (no style encoder).
    * ``baseline-s`` — no conditional normalization (plain BatchNorm), the target parsing
      one-hot concatenated to the pose encoder input.
    * ``baseline`` — no conditional normalization and no parsing input.

    All variants except ``sean-only`` deform appearance features at the first
    ``num_warp_scales`` scales (0 turns deformation off for any variant).
    """

    variant: str = "full"
    pose_channels: int = 30  # 30 = heat maps + distance maps (paper); 18 = official disks
    nf: int = 32  # width of the finest scale; scale l has min(nf*(l+1), max_nf) channels
    max_nf: int = 128
    num_scales: int = 7  # U-Net scales; inputs are padded to a multiple of 2**num_scales
    num_warp_scales: int = 5  # feature deformation at scales 0 .. num_warp_scales-1
    num_res_blocks: int = 2  # residual blocks per encoder scale = SPGBlocks per decoder scale
    style_dim: int = 128  # style code length (SEAN Zencoder output, per-class Linear width)
    style_nf: int = 32  # style encoder base width (32 -> 64 -> 128 -> 256 -> style_dim)
    spade_hidden: int = 64  # hidden width of the SPADE (semantic) branch
    ace_kernel: int = 5  # kernel of every ACE conv: style gamma/beta and SPADE (5 DF, 3 Market)
    # Where the decoder's per-scale ACE sits relative to the x2 upsampling:
    # "before" (official DeepFashion): ACE(x) -> ReLU -> conv -> PixelShuffle -> BatchNorm;
    # "after" (official Market): ReLU -> conv -> PixelShuffle -> ACE (no BatchNorm).
    upsample_norm: str = "before"
    # Padding of inputs whose size is not a multiple of 2**num_scales (centred, cropped after).
    pad_mode: str = "replicate"
    # Style gamma/beta convs evaluated on the 20 class masks with per-sample kernels
    # (exact, ~6x fewer FLOPs; docs/design.md §12) instead of on the 128-channel broadcast map.
    factorized_style_conv: bool = True
    # How each ACE draws its per-pixel noise (docs/design.md §14); the distribution is the same:
    # "device": randn(B, 1, H, W) on the model's device; "official": the official release's
    # draw, randn(B, W, H, 1) from the CPU generator transposed to (B, 1, H, W) and moved to
    # the device, so a converted official model with a given seed adds the official numbers.
    noise_layout: str = "device"

    def __post_init__(self) -> None:
        s = "model.generator"
        check_choice(self.variant, f"{s}.variant", VARIANTS)
        check_positive_ints(s, self, ("pose_channels", "nf", "max_nf", "num_scales", "num_res_blocks",
                                      "style_dim", "style_nf", "spade_hidden", "ace_kernel"))
        check_int(self.num_warp_scales, f"{s}.num_warp_scales", minimum=0, maximum=self.num_scales)
        check(self.ace_kernel % 2 == 1, f"{s}.ace_kernel", f"must be odd, got {self.ace_kernel}")
        check_choice(self.upsample_norm, f"{s}.upsample_norm", UPSAMPLE_NORMS)
        check_choice(self.pad_mode, f"{s}.pad_mode", PAD_MODES)
        check_bool(self.factorized_style_conv, f"{s}.factorized_style_conv")
        check_choice(self.noise_layout, f"{s}.noise_layout", NOISE_LAYOUTS)

    @property
    def uses_style(self) -> bool:
        """Style encoder + SEAN style branch (per-region codes from the source image)."""
        return self.variant in ("full", "sean-only")

    @property
    def uses_semantic_norm(self) -> bool:
        """Conditional (ACE / SPADE) normalization in the decoder instead of BatchNorm."""
        return self.variant in ("full", "sean-only", "spade")

    @property
    def uses_deformation(self) -> bool:
        return self.variant != "sean-only" and self.num_warp_scales > 0

    @property
    def pose_encoder_channels(self) -> int:
        return self.pose_channels + (NUM_PARSING_CLASSES if self.variant == "baseline-s" else 0)

    @property
    def size_multiple(self) -> int:
        return 2 ** self.num_scales

    def width(self, level: int) -> int:
        """Channels of encoder/decoder scale ``level`` (0 = full resolution)."""
        return min(self.nf * (level + 1), self.max_nf)


@dataclass
class SPATNConfig:
    """Stage-1 parsing network (docs/design.md §6, PATN-style): what
    ``spgnet.models.spatn.SPATN(cfg)`` is built from."""

    input: str = "parsing"  # "parsing" (SPATN, source parsing one-hot) | "image" (SPATN*, source image)
    pose_channels: int = 30  # per pose; the pose stream sees cat(p_s, p_t)
    dim: int = 64  # stem width (7x7 conv); the attention blocks run at 4 * dim after two stride-2 convs
    num_blocks: int = 9  # pose-attentional transfer blocks
    norm: str = "batch"  # "batch" | "instance"

    def __post_init__(self) -> None:
        check_choice(self.input, "model.spatn.input", SPATN_INPUTS)
        check_choice(self.norm, "model.spatn.norm", SPATN_NORMS)
        check_positive_ints("model.spatn", self, ("pose_channels", "dim", "num_blocks"))


@dataclass
class DiscriminatorConfig:
    """PatchGAN (docs/design.md §9) on cat(source image, image, target pose): what
    ``spgnet.models.discriminator.NLayerDiscriminator(cfg, in_channels=...)`` is built from
    (``in_channels`` is derived from the data: 3 + 3 + pose channels)."""

    ndf: int = 64
    n_layers: int = 3  # 4x4 convs ndf, 2ndf, 4ndf (stride 2), 8ndf (stride 1), then 1 channel
    norm: str = "batch"  # "batch" | "instance" | "none"
    spectral: bool = False  # spectral norm on every conv

    def __post_init__(self) -> None:
        check_choice(self.norm, "model.discriminator.norm", DISCRIMINATOR_NORMS)
        check_positive_ints("model.discriminator", self, ("ndf", "n_layers"))
        check_bool(self.spectral, "model.discriminator.spectral")


FLOW_NET_NORMS: tuple[str, ...] = ("batch", "instance")  # model.flow_net.norm (the official FlowUnet's)


@dataclass(frozen=True)
class FlowNetConfig:
    """The official release's flow network (Intr-Flow's ``FlowUnet``, docs/design.md §14), used
    with ``train.flow: official``: what ``spgnet.models.official_flow.OfficialFlowNet(cfg)`` is
    built from. ``nf``, ``start_scale``, ``num_scale`` and ``norm`` are its constructor
    options, read from the release's ``train_opt.json`` by ``spgnet convert-official``
    (:func:`spgnet.models.official_flow.read_train_opt`); ``disk_radius`` is the radius of its
    36 binary keypoint-disk inputs (official: 8 px DeepFashion, 4 px Market)."""

    input_nc: int = 36  # cat(18 source disks, 18 target disks)
    nf: int = 16
    start_scale: int = 2
    num_scale: int = 5
    norm: str = "batch"
    max_nf: int = 512  # FlowUnet's default; the release builds it without passing max_nf
    disk_radius: float = 8.0

    def __post_init__(self) -> None:
        s = "model.flow_net"
        check_positive_ints(s, self, ("input_nc", "nf", "start_scale", "num_scale", "max_nf"))
        check(self.start_scale & (self.start_scale - 1) == 0, f"{s}.start_scale",
              f"must be a power of 2 (1, 2, 4, ...), got {self.start_scale}")
        check(self.num_scale >= 2, f"{s}.num_scale",
              f"must be >= 2 (the official FlowUnet cannot run with one level), got {self.num_scale}")
        check_choice(self.norm, f"{s}.norm", FLOW_NET_NORMS)
        object.__setattr__(self, "disk_radius", check_number(self.disk_radius, f"{s}.disk_radius", gt=0))

    @property
    def stem_channels(self) -> int:
        """``c``: the stem's output width, ``nf · start_scale``."""
        return self.nf * self.start_scale

    def level_channels(self, level: int) -> tuple[int, int]:
        """``(outer, inner)`` widths of U-Net level ``level`` (0 = outermost)."""
        c = self.stem_channels
        return min(self.max_nf, c * 2 ** level), min(self.max_nf, c * 2 ** (level + 1))

    def describe(self) -> str:
        return (f"FlowUnet(input_nc={self.input_nc}, nf={self.nf}, start_scale={self.start_scale}, "
                f"num_scale={self.num_scale}, norm={self.norm!r})")


@dataclass
class ModelConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    spatn: SPATNConfig = field(default_factory=SPATNConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    flow_net: FlowNetConfig = field(default_factory=FlowNetConfig)  # train.flow: official


def _market(cfg: ModelConfig) -> ModelConfig:
    gen = replace(cfg.generator, num_scales=5, num_warp_scales=4, ace_kernel=3, upsample_norm="after")
    # SPATN* (source image instead of parsing): parsers fail on Market's 128x64 images.
    return replace(cfg, generator=gen, spatn=replace(cfg.spatn, input="image"))


def _official(cfg: ModelConfig) -> ModelConfig:
    return replace(cfg, generator=replace(cfg.generator, pose_channels=18),
                   spatn=replace(cfg.spatn, pose_channels=18))


MODEL_PRESETS = {
    "deepfashion": lambda: ModelConfig(),
    "market": lambda: _market(ModelConfig()),
    "official-deepfashion": lambda: _official(ModelConfig()),
    "official-market": lambda: _official(_market(ModelConfig())),
}


def model_preset(name: str) -> ModelConfig:
    """A fresh :class:`ModelConfig` for a preset name (see the module docstring)."""
    if name not in MODEL_PRESETS:
        raise SPGNetError(f"model preset {name!r}: unknown (choose from {', '.join(MODEL_PRESETS)})")
    return MODEL_PRESETS[name]()


__all__ = ["VARIANTS", "UPSAMPLE_NORMS", "PAD_MODES", "SPATN_INPUTS", "SPATN_NORMS", "DISCRIMINATOR_NORMS",
           "ConfigValueError", "check", "check_bool", "check_choice", "check_int", "check_list", "check_number",
           "check_positive_ints", "check_str", "fail",
           "FLOW_NET_NORMS", "FlowNetConfig", "GeneratorConfig", "SPATNConfig", "DiscriminatorConfig", "ModelConfig",
           "MODEL_PRESETS", "model_preset"]
