"""Model configuration: generator (DESIGN §8), SPATN (§6) and discriminator (§9).

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

from dataclasses import dataclass, field, replace

from spgnet import SPGNetError

# Paper Table 3 ablations, from the strongest to the weakest model.
VARIANTS: tuple[str, ...] = ("full", "sean-only", "spade", "baseline-s", "baseline")
NUM_PARSING_CLASSES = 20  # CIHP labels (spgnet.parsing.NUM_CLASSES; not imported: no torch here)


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise SPGNetError(f"model.{key}: {message}")


def _check_positive_ints(section: str, obj, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
               f"{section}.{name}", f"expected a positive integer, got {value!r}")


@dataclass
class GeneratorConfig:
    """Stage-2 generator (DESIGN §8). Defaults: the paper's DeepFashion model at 256 px.

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
    # (exact, ~6x fewer FLOPs; DESIGN §12) instead of on the 128-channel broadcast map.
    factorized_style_conv: bool = True

    def __post_init__(self) -> None:
        s = "generator"
        _check(self.variant in VARIANTS, f"{s}.variant",
               f"{self.variant!r} is not one of {', '.join(VARIANTS)}")
        _check_positive_ints(s, self, ("pose_channels", "nf", "max_nf", "num_scales", "num_res_blocks",
                                       "style_dim", "style_nf", "spade_hidden", "ace_kernel"))
        _check(isinstance(self.num_warp_scales, int) and 0 <= self.num_warp_scales <= self.num_scales,
               f"{s}.num_warp_scales", f"expected 0..num_scales ({self.num_scales}), got {self.num_warp_scales!r}")
        _check(self.ace_kernel % 2 == 1, f"{s}.ace_kernel", f"must be odd, got {self.ace_kernel}")
        _check(self.upsample_norm in ("before", "after"), f"{s}.upsample_norm",
               f"expected 'before' or 'after', got {self.upsample_norm!r}")
        _check(self.pad_mode in ("replicate", "reflect", "zeros"), f"{s}.pad_mode",
               f"expected 'replicate', 'reflect' or 'zeros', got {self.pad_mode!r}")

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
    """Stage-1 parsing network (DESIGN §6, PATN-style); fields are the keyword arguments
    of ``spgnet.models.spatn.SPATN``."""

    input: str = "parsing"  # "parsing" (SPATN, source parsing one-hot) | "image" (SPATN*, source image)
    pose_channels: int = 30  # per pose; the pose stream sees cat(p_s, p_t)
    dim: int = 64  # stem width (7x7 conv); the attention blocks run at 4 * dim after two stride-2 convs
    num_blocks: int = 9  # pose-attentional transfer blocks
    norm: str = "batch"  # "batch" | "instance"

    def __post_init__(self) -> None:
        _check(self.input in ("parsing", "image"), "spatn.input",
               f"expected 'parsing' or 'image', got {self.input!r}")
        _check(self.norm in ("batch", "instance"), "spatn.norm",
               f"expected 'batch' or 'instance', got {self.norm!r}")
        _check_positive_ints("spatn", self, ("pose_channels", "dim", "num_blocks"))


@dataclass
class DiscriminatorConfig:
    """PatchGAN (DESIGN §9) on cat(source image, image, target pose); fields are keyword
    arguments of ``spgnet.models.discriminator.NLayerDiscriminator`` (``in_channels`` is
    derived: 3 + 3 + pose channels)."""

    ndf: int = 64
    n_layers: int = 3  # 4x4 convs ndf, 2ndf, 4ndf (stride 2), 8ndf (stride 1), then 1 channel
    norm: str = "batch"  # "batch" | "instance" | "none"
    spectral: bool = False  # spectral norm on every conv

    def __post_init__(self) -> None:
        _check(self.norm in ("batch", "instance", "none"), "discriminator.norm",
               f"expected 'batch', 'instance' or 'none', got {self.norm!r}")
        _check_positive_ints("discriminator", self, ("ndf", "n_layers"))


@dataclass
class ModelConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    spatn: SPATNConfig = field(default_factory=SPATNConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


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


__all__ = ["VARIANTS", "GeneratorConfig", "SPATNConfig", "DiscriminatorConfig", "ModelConfig",
           "MODEL_PRESETS", "model_preset"]
