"""One typed config schema (dataclasses) loaded from YAML with ``--set a.b=c`` overrides.

The resolved config is written into every run directory and checkpoint so that
``generate``, ``evaluate`` and ``transfer`` can rebuild everything from it alone.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from spgnet import SPGNetError
from spgnet.models.config import ModelConfig
from spgnet.losses import LossWeights


@dataclass
class PoseConfig:
    """Pose representation (DESIGN §3)."""

    kind: str = "heatmap+distance"  # "heatmap+distance" (30 ch, paper) | "disk" (18 ch, official preset)
    sigma: float = 6.0  # Gaussian heat-map sigma in pixels (PATN)
    kappa: float = -0.1  # distance-map decay, M = exp(kappa * distance)
    disk_radius: float = 8.0  # binary disk radius in pixels (official: 8 at 256 px, 4 for Market)

    @property
    def channels(self) -> int:
        return 30 if self.kind == "heatmap+distance" else 18


@dataclass
class DatasetConfig:
    """Where a dataset's files are (DESIGN §4) and how samples are sized.

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

    def path(self, key: str, split: str) -> Path:
        return Path(self.root) / getattr(self, key).format(split=split)


@dataclass
class TrainConfig:
    """Optimisation and the training engine (DESIGN §1, §9, §13)."""

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
    # write run_dir/rank<R>_digest.json at the end: a hash of every parameter and buffer
    # and the samples each rank trained on (tests: DDP replicas identical, shards disjoint)
    debug_rank_digest: bool = False
    out_dir: str = "runs"
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class Config:
    """Top-level config. Sections are added as the project grows (model, train, eval)."""

    name: str = "spgnet"
    data: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _from_dict(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise SPGNetError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SPGNetError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value or {}, f"{where}.{key}")
        else:
            kwargs[key] = value
    return cls(**kwargs)


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


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    return _from_dict(Config, raw, where)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
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
    "PoseConfig", "DatasetConfig", "TrainConfig", "Config", "load_config", "apply_overrides",
    "config_from_dict", "config_to_dict", "dump_config", "dataclasses",
]
