"""One typed config schema (dataclasses) loaded from YAML with ``--set a.b=c`` overrides.

The resolved config is written into every run directory and checkpoint so that
``generate``, ``evaluate`` and ``transfer`` can rebuild everything from it alone.

Every value is checked when its dataclass is built (``__post_init__``), so a whole
config is validated when it is loaded: a bad value raises :class:`~spgnet.SPGNetError`
(:class:`ConfigValueError`) with one line naming the full dotted key, the value and
what is allowed (``train.scheme: 'paralel' is not one of parallel, sequential, joint``).
The allowed values are the public constants below (:data:`POSE_KINDS`, :data:`SCHEMES`,
...), which the modules that consume them import. No torch import here.

The dataclass field types are the schema: before a dataclass is built, a number written
in another notation is converted to its ``float`` field's type (:func:`_coerce`: PyYAML
reads ``1e-4`` as a string), and after it is built every field is checked against its
annotated type (:func:`_check_types`), so a field whose ``__post_init__`` forgets a check
still cannot hold a value of another type. Integers stay strict (``128.0`` is refused).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from spgnet import SPGNetError
from spgnet.models.config import (ConfigValueError, ModelConfig, check, check_bool, check_choice, check_int,
                                  check_list, check_number, check_str)

# The allowed values of the config's choice keys.
POSE_KINDS: tuple[str, ...] = ("heatmap+distance", "heatmap", "disk")  # data.pose.kind
# 18 heat maps + 12 limb distance maps (paper) | the 18 heat maps alone (paper's ablation) | 18 disks (official)
POSE_CHANNELS: dict[str, int] = {"heatmap+distance": 30, "heatmap": 18, "disk": 18}
SCHEMES: tuple[str, ...] = ("parallel", "sequential", "joint")  # train.scheme
AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")  # train.amp
FLOW_KINDS: tuple[str, ...] = ("part-affine", "file", "official", "none")  # train.flow
GAN_MODES: tuple[str, ...] = ("vanilla", "lsgan", "hinge")  # train.gan_mode
# The target parsing stage 2 sees at inference (`generate --target-parsing`; spgnet.pipeline).
TARGET_PARSINGS: tuple[str, ...] = ("ours", "provided", "ground-truth")
# train.device: what training.distributed.resolve_device is given ("cuda" = this rank's GPU).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# A number written as text (PyYAML 1.1 reads `1e-4`, `2e-4` without a dot as strings), as
# check_number (spgnet.models.config) accepts it.
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# The YAML configs shipped with the package (package data: present in wheels too).
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class LossWeights:
    """λ of the loss terms (docs/design.md §9; official ``pose_transfer_options.py``).

    ``adversarial_start_epoch`` counts epochs from 1 as the official loop does
    (``epoch_add_gan=6``: epochs 1–5 train without the GAN term, so the discriminator
    first trains in the 6th epoch); :meth:`adversarial_enabled` takes a 0-based epoch
    index. ``discriminator`` scales the discriminator loss before its backward (the
    official code multiplies ``loss_D`` by ``loss_weight_gan`` as well).
    """

    l1: float = 1.0
    perceptual: float = 1.0
    adversarial: float = 0.01
    adversarial_start_epoch: int = 6
    discriminator: float = 0.01
    ce: float = 10.0

    def __post_init__(self) -> None:
        s = "train.losses"
        for name in ("l1", "perceptual", "adversarial", "discriminator", "ce"):
            setattr(self, name, check_number(getattr(self, name), f"{s}.{name}", ge=0))
        self.adversarial_start_epoch = check_int(self.adversarial_start_epoch, f"{s}.adversarial_start_epoch",
                                                 minimum=1)

    def adversarial_enabled(self, epoch_index: int) -> bool:
        """Whether the GAN terms are on during the epoch with 0-based index ``epoch_index``."""
        return self.adversarial > 0 and epoch_index + 1 >= self.adversarial_start_epoch


@dataclass
class PoseConfig:
    """Pose representation (docs/design.md §3)."""

    kind: str = "heatmap+distance"  # "heatmap+distance" (30 ch, paper) | "heatmap" (18 ch) | "disk" (18 ch, official)
    sigma: float = 6.0  # Gaussian heat-map sigma in pixels (PATN)
    kappa: float = -0.1  # distance-map decay, M = exp(kappa * distance)
    disk_radius: float = 8.0  # binary disk radius in pixels (official: 8 at 256 px, 4 for Market)

    def __post_init__(self) -> None:
        s = "data.pose"
        check_choice(self.kind, f"{s}.kind", POSE_KINDS)
        self.sigma = check_number(self.sigma, f"{s}.sigma", gt=0)
        self.kappa = check_number(self.kappa, f"{s}.kappa", lt=0)
        self.disk_radius = check_number(self.disk_radius, f"{s}.disk_radius", ge=0)

    @property
    def channels(self) -> int:
        return POSE_CHANNELS[self.kind]


@dataclass
class DatasetConfig:
    """Where a dataset's files are (docs/design.md §4) and how samples are sized.

    Every path is relative to ``root``; ``{split}`` in a pattern is replaced by the
    split name (``train`` / ``test``), so DeepFashion's ``fasion-resize-pairs-{split}.csv``
    and Market's ``market-annotation-{split}.csv`` are both expressible.
    """

    root: str = "data/synthetic"
    image_dir: str = "{split}"
    annotation_file: str = "annotation-{split}.csv"
    pairs_file: str = "pairs-{split}.csv"
    parsing_dir: str = "parsing"
    flow_dir: str = "flow"
    # Provided target parsing per pair, <from-stem>___<to-stem>.png (e.g. the official release's
    # stage-1 predictions, imported by `spgnet import-official`): `generate --target-parsing provided`.
    pred_parsing_dir: str = "parsing-pred"
    # Expected size of the images on disk (H, W); the validator checks it. None = any.
    image_size: list[int] | None = None
    # Optional crop (top, left, height, width) applied on the disk image before resizing,
    # e.g. DeepFashion 256x256 -> 256x176 is [0, 40, 256, 176].
    crop: list[int] | None = None
    # Size of the samples the model sees (H, W).
    load_size: list[int] = field(default_factory=lambda: [128, 88])
    use_flow: bool = False  # load .corr flow + visibility when present
    hflip: bool = False  # random horizontal flip of whole pairs when training
    # Where pose maps / one-hot parsing are made: in the loader workers (True) or on the
    # model's device by data.dataset.complete_batch (False), which every consumer calls.
    pose_in_loader: bool = True
    onehot_in_loader: bool = False
    pose: PoseConfig = field(default_factory=PoseConfig)

    def __post_init__(self) -> None:
        s = "data"
        for name in ("root", "image_dir", "annotation_file", "pairs_file", "parsing_dir", "flow_dir",
                     "pred_parsing_dir"):
            check_str(getattr(self, name), f"{s}.{name}")
        self.load_size = _size(self.load_size, f"{s}.load_size")
        self.image_size = _size(self.image_size, f"{s}.image_size", optional=True)
        crop = check_list(self.crop, f"{s}.crop", 4, "[top, left, height, width] (top, left >= 0; height, width >= 1)",
                          optional=True)
        if crop is not None:
            crop = [check_int(v, f"{s}.crop[{i}]", minimum=0 if i < 2 else 1) for i, v in enumerate(crop)]
        self.crop = crop
        for name in ("use_flow", "hflip", "pose_in_loader", "onehot_in_loader"):
            check_bool(getattr(self, name), f"{s}.{name}")
        check(isinstance(self.pose, PoseConfig), f"{s}.pose", f"expected a mapping, got {self.pose!r}")

    def path(self, key: str, split: str) -> Path:
        return Path(self.root) / getattr(self, key).format(split=split)


@dataclass
class TrainConfig:
    """Optimisation and the training engine (docs/design.md §1, §9, §13)."""

    # "parallel" = S1‖S2 (paper's best: stages train together, stage 2 sees the GT target
    # parsing), "sequential" = S1▷S2 (stage 1 first, frozen, stage 2 on its predictions),
    # "joint" = S1⋈S2 (end to end through a soft parsing).
    scheme: str = "parallel"
    epochs: int = 20
    stage1_epochs: int = 5  # "sequential": epochs of stage-1 training before stage 2
    max_steps: int = 0  # stop after this many optimizer steps in total (0: after `epochs`)
    batch_size: int = 4
    workers: int = 2
    lr_g: float = 2e-4
    lr_d: float = 2e-5
    lr_stage1: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    plateau_patience: int = 1  # validations without improvement before the lr is halved
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    losses: LossWeights = field(default_factory=LossWeights)
    gan_mode: str = "vanilla"
    vgg_weights: str | None = None  # path to torchvision's vgg19-dcbb9e9d.pth (else the torch cache)
    flow: str = "part-affine"  # part-affine | file | none (the flow given to stage 2)
    amp: str = "none"  # none | bf16 | fp16 (autocast; fp16 uses a GradScaler)
    channels_last: bool = False
    grad_clip: float = 0.0  # max grad norm per network (0: off)
    deterministic: bool = False
    seed: int = 0
    sync_bn: bool = False  # convert BatchNorm to SyncBatchNorm under DDP
    val_every: int = 1  # epochs between validations
    val_pairs: int = 0  # test pairs used for validation (0: all)
    log_every: int = 10  # steps between scalar logs
    image_every: int = 200  # steps between image grids in TensorBoard
    save_every: int = 0  # steps between `last` checkpoints (0: at the end of each epoch only)
    max_nonfinite: int = 5  # stop after this many non-finite steps in a row
    # before each validation and the final checkpoint, set the BatchNorm running statistics
    # of stage 1 and the generator to their average over this many training batches with
    # the current weights ("precise BN", training/precise_bn.py); 0: keep the moving averages
    precise_bn_batches: int = 50
    # exponential moving average of the stage-1 and generator weights (training/ema.py):
    # after every optimizer step ema = ema_decay * ema + (1 - ema_decay) * weights; when on,
    # validation scores the averaged weights, checkpoints store them (ema-*.safetensors) and
    # generate/transfer use them. 0: off (typical: 0.999)
    ema_decay: float = 0.0
    # write run_dir/rank<R>_digest.json at the end: a hash of every parameter and buffer
    # and the samples each rank trained on (tests: DDP replicas identical, shards disjoint)
    debug_rank_digest: bool = False
    out_dir: str = "runs"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps

    def __post_init__(self) -> None:
        s = "train"
        check_choice(self.scheme, f"{s}.scheme", SCHEMES)
        check_choice(self.amp, f"{s}.amp", AMP_MODES)
        check_choice(self.flow, f"{s}.flow", FLOW_KINDS)
        check_choice(self.gan_mode, f"{s}.gan_mode", GAN_MODES)
        check(isinstance(self.device, str) and _DEVICE.fullmatch(self.device) is not None, f"{s}.device",
              f"{self.device!r} is not one of {', '.join(DEVICES)}")
        for name in ("epochs", "batch_size", "log_every", "max_nonfinite"):
            check_int(getattr(self, name), f"{s}.{name}", minimum=1)
        # 0 is meaningful here: val_every/image_every/save_every/precise_bn_batches 0 = off,
        # max_steps 0 = no step limit, val_pairs 0 = all pairs, workers 0 = load in the main process
        for name in ("stage1_epochs", "max_steps", "workers", "plateau_patience", "val_every", "val_pairs",
                     "image_every", "save_every", "precise_bn_batches", "seed"):
            check_int(getattr(self, name), f"{s}.{name}", minimum=0)
        for name in ("lr_g", "lr_d", "lr_stage1"):
            setattr(self, name, check_number(getattr(self, name), f"{s}.{name}", gt=0))
        self.min_lr = check_number(self.min_lr, f"{s}.min_lr", ge=0)
        self.plateau_factor = check_number(self.plateau_factor, f"{s}.plateau_factor", gt=0, lt=1)
        self.grad_clip = check_number(self.grad_clip, f"{s}.grad_clip", ge=0)
        self.ema_decay = check_number(self.ema_decay, f"{s}.ema_decay", ge=0, lt=1)
        betas = check_list(self.betas, f"{s}.betas", 2, "[beta1, beta2], two numbers in [0, 1)")
        self.betas = [check_number(v, f"{s}.betas[{i}]", ge=0, lt=1) for i, v in enumerate(betas)]
        for name in ("channels_last", "deterministic", "sync_bn", "debug_rank_digest"):
            check_bool(getattr(self, name), f"{s}.{name}")
        check_str(self.vgg_weights, f"{s}.vgg_weights", optional=True)
        check_str(self.out_dir, f"{s}.out_dir")
        check(isinstance(self.losses, LossWeights), f"{s}.losses", f"expected a mapping, got {self.losses!r}")


@dataclass
class Config:
    """Top-level config. Sections are added as the project grows (model, train, eval)."""

    name: str = "spgnet"
    data: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_str(self.name, "name")
        for key, cls in (("data", DatasetConfig), ("model", ModelConfig), ("train", TrainConfig)):
            check(isinstance(getattr(self, key), cls), key, f"expected a mapping, got {getattr(self, key)!r}")
        # The networks' pose inputs must have as many channels as data.pose.kind makes.
        kind, channels = self.data.pose.kind, self.data.pose.channels
        for key, value in (("model.generator.pose_channels", self.model.generator.pose_channels),
                           ("model.spatn.pose_channels", self.model.spatn.pose_channels)):
            if value != channels:
                fits = [k for k, c in POSE_CHANNELS.items() if c == value]
                fix = (f"set model.generator.pose_channels={channels} and model.spatn.pose_channels={channels}"
                       + (f", or data.pose.kind={fits[0]}" if fits else ""))
                raise ConfigValueError(f"{key} is {value} but data.pose.kind={kind!r} gives {channels} channels; {fix}")


def _size(value: Any, key: str, optional: bool = False) -> list[int] | None:
    """``[height, width]``, two positive integers (None when optional)."""
    size = check_list(value, key, 2, "[height, width], two positive integers", optional=optional)
    return None if size is None else [check_int(v, f"{key}[{i}]", minimum=1) for i, v in enumerate(size)]


def _optional_of(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` (``Optional[X]``), ``(hint, False)`` otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _coerce(value: Any, hint: Any) -> Any:
    """A value written in another notation, converted to the field type ``hint``: a
    ``float`` field takes a number in any notation (PyYAML reads ``1e-4`` and ``1.0e30``
    as strings: its exponents need a dot and a sign), also item by item in a ``list[float]``.
    An ``int`` field takes integers only (``128.0`` is refused by its check, on purpose:
    a size or a count written as a float is a mistake). Anything else is unchanged."""
    hint, optional = _optional_of(hint)
    if value is None and optional:
        return None
    if hint is float:
        if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
            return float(value)
        return value
    if typing.get_origin(hint) is list and isinstance(value, (list, tuple)):
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item) for v in value]
    return value


def _type_name(hint: Any) -> str:
    hint, optional = _optional_of(hint)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if hint in names:
        text = names[hint]
    elif typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        text = f"a list of {_type_name(item).removeprefix('an ').removeprefix('a ')}s"
    else:
        text = "a mapping" if is_dataclass(hint) else getattr(hint, "__name__", str(hint))
    return f"{text} or null" if optional else text


def _has_type(value: Any, hint: Any) -> bool:
    hint, optional = _optional_of(hint)
    if value is None:
        return optional
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a type this schema does not describe (Any): the dataclass checks it


def _check_types(obj: Any, prefix: str) -> None:
    """Every field of the dataclass ``obj`` holds a value of its annotated type (one line
    naming the dotted key otherwise): the field types are the schema."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name
        check(_has_type(value, hints[f.name]), key, f"expected {_type_name(hints[f.name])}, got {value!r}")


def _from_dict(cls, data: dict[str, Any], where: str, prefix: str = ""):
    """``cls`` built from ``data``: unknown keys named as ``where.key``, each value
    converted to its field's type (:func:`_coerce`), then checked by the dataclass
    (``__post_init__``) and against the field types (:func:`_check_types`)."""
    if not isinstance(data, dict):
        raise SPGNetError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise SPGNetError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} "
                          f"(allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        dotted = f"{prefix}.{key}" if prefix else key
        if is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value or {}, f"{where}.{key}", dotted)
        else:
            kwargs[key] = _coerce(value, hint)
    obj = cls(**kwargs)
    _check_types(obj, prefix)
    return obj


def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides or []:
        if "=" not in item:
            raise SPGNetError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SPGNetError(f"--set {item!r}: {part} is not a section")
        node[parts[-1]] = _parse_scalar(value)
    return raw


def _default_pose_channels(raw: Any) -> Any:
    """``model.generator.pose_channels`` and ``model.spatn.pose_channels`` default to the
    channels ``data.pose.kind`` gives (a config that only says ``data.pose.kind: disk`` gets
    18-channel networks); values that are given are kept (and checked against the kind)."""
    if not isinstance(raw, dict):
        return raw
    data, model = raw.get("data"), raw.get("model", {})
    pose = data.get("pose") if isinstance(data, dict) else None
    kind = pose.get("kind") if isinstance(pose, dict) else None
    if not isinstance(kind, str) or kind not in POSE_CHANNELS or not isinstance(model, dict):
        return raw
    model = dict(model)
    for section in ("generator", "spatn"):
        value = model.get(section) or {}
        if isinstance(value, dict) and "pose_channels" not in value:
            model[section] = {**value, "pose_channels": POSE_CHANNELS[kind]}
    return {**raw, "model": model}


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    """The validated :class:`Config` of a raw dict. ``where`` (a file, a checkpoint)
    prefixes the error messages: unknown keys are named as ``where.section``, a bad
    value as ``where: train.scheme: ...`` (just ``train.scheme: ...`` for the default)."""
    raw = _default_pose_channels(raw)
    try:
        return _from_dict(Config, raw, where)
    except ConfigValueError as exc:
        if where == "config":
            raise
        raise ConfigValueError(f"{where}: {exc}") from None


def packaged_configs() -> list[str]:
    """Names of the configs shipped inside the package (``spgnet/configs/<name>.yaml``)."""
    return sorted(p.stem for p in PACKAGED_CONFIG_DIR.glob("*.yaml"))


def packaged_config(name: str) -> Path:
    """The file of the packaged config ``name`` (``deepfashion`` or ``deepfashion.yaml``)."""
    stem = Path(name).name.removesuffix(".yaml")
    path = PACKAGED_CONFIG_DIR / f"{stem}.yaml"
    if not path.is_file():
        raise SPGNetError(f"config {name!r}: no such packaged config (choose from {', '.join(packaged_configs())})")
    return path


def resolve_config_path(path: str | Path) -> Path:
    """``path`` when it exists; else the packaged config it names: a bare name
    (``deepfashion``, ``market.yaml``) or ``configs/<name>.yaml`` as the README writes it,
    so the same command works in a checkout and with an installed package anywhere."""
    path = Path(path)
    if path.exists():
        return path
    if path.parent in (Path("."), Path("configs")) and path.suffix in ("", ".yaml"):
        candidate = PACKAGED_CONFIG_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
        if candidate.is_file():
            return candidate
    return path


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.
    ``path`` may name a packaged config (:func:`resolve_config_path`)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise SPGNetError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise SPGNetError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    raw = apply_overrides(raw, overrides or [])
    return config_from_dict(raw, str(path or "config"))


def config_to_dict(cfg) -> dict[str, Any]:
    return asdict(cfg)


def dump_config(cfg) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


__all__ = [
    "POSE_KINDS", "POSE_CHANNELS", "TARGET_PARSINGS", "SCHEMES", "AMP_MODES", "FLOW_KINDS", "GAN_MODES", "DEVICES",
    "PACKAGED_CONFIG_DIR", "packaged_config", "packaged_configs", "resolve_config_path",
    "ConfigValueError", "LossWeights", "PoseConfig", "DatasetConfig", "TrainConfig", "Config", "load_config",
    "apply_overrides",
    "config_from_dict", "config_to_dict", "dump_config", "dataclasses",
]
