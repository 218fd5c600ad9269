"""Scoring generated images against a dataset split (docs/design.md §10), and the in-memory
evaluator that training validation and the demo use.

Both go through the metric registry (``spgnet.evaluation.metrics``): :class:`BatchEvaluator`
creates the registered metric objects and feeds them batch dicts, and
:func:`evaluate_directory` drives a ``BatchEvaluator`` over a folder of generated
images, so a metric is computed by one code path everywhere.

``evaluate_directory`` (the library side of ``spgnet evaluate``):

1. every pair ``(from, to)`` of the split's pairs file names its generated image
   ``<from-stem>___<to-stem>.png`` in the generated folder and, optionally, stage 1's
   predicted target parsing ``<from-stem>___<to-stem>_parsing.png`` (uint8 CIHP labels)
   in the same folder (what ``spgnet generate`` writes);
2. the real target is read from the dataset with the loader's own geometry
   (``cfg.crop``, then an antialiased bilinear resize to the evaluation size, 8-bit),
   with its annotated keypoints and ground-truth parsing at that size;
3. generated images of another size are resized to the evaluation size
   (``EvalOptions.resize``); optional padding (``pad_to``, PATN's white ``addBounding``)
   is applied to generated and real images alike;
4. SSIM, Mask-SSIM, PSNR, L1, LPIPS, Mask-LPIPS, FID (against the real *training*
   images by default, statistics cached), PCKh (keypoints detected on the generated
   images by ``spgnet.photo.detect``) and stage-1 mIoU; a metric whose weights or detector
   are missing is reported *unavailable* with the reason and the rest are computed;
5. ``metrics.json``, ``metrics.md``, ``per_image.csv`` and ``report.html`` are written
   (``spgnet.evaluation.report``), each stating the protocol.

Shapes at the boundaries: images ``(B, 3, H, W)`` float in [-1, 1] (in memory) or uint8
``(3, H, W)`` (loader items); keypoints ``(B, 18, 2)`` (x, y); parsing ``(B, H, W)`` int.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from spgnet import SPGNetError, __version__
from spgnet.config import Config, DatasetConfig, load_config
from spgnet.data.dataset import SPLITS, PairDataset, index_image_dir, pair_name
from spgnet.evaluation.batch import BatchEvaluator
from spgnet.evaluation.metrics import METRICS, Metric, create_metric
from spgnet.pose import check_keypoints
from spgnet.utils.device import resolve_device
from spgnet.utils.weights import MissingWeightsError

ALL_METRICS: tuple[str, ...] = (
    "ssim", "mask_ssim", "psnr", "l1", "lpips", "mask_lpips", "fid", "pckh", "parsing_miou",
)
RESIZE_METHODS = ("bilinear", "bicubic", "nearest", "error")
IMAGE_FORMATS = ("png", "jpg")
PARSING_SUFFIX = "_parsing.png"
EXIT_ALL_COMPUTED = 0
EXIT_SOME_UNAVAILABLE = 3  # bad input is 2, via SPGNetError in the CLI


def default_cache_dir() -> Path:
    """Where real-set FID statistics are cached: ``$SPGNET_CACHE_DIR/fid``, else
    ``$XDG_CACHE_HOME/spgnet/fid``, else ``~/.cache/spgnet/fid``."""
    if os.environ.get("SPGNET_CACHE_DIR"):
        return Path(os.environ["SPGNET_CACHE_DIR"]).expanduser() / "fid"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "spgnet" / "fid"


# --------------------------------------------------------------------------- options and results


@dataclass
class EvalOptions:
    """Every protocol choice of ``spgnet evaluate`` (docs/design.md §10 defaults); all of them are
    written into ``metrics.json``."""

    metrics: tuple[str, ...] = ALL_METRICS
    real_set: str = "train"  # FID reference: every image of this split's image folder
    size: tuple[int, int] | None = None  # evaluation size (H, W); None: the config's data.load_size
    resize: str = "bilinear"  # generated images of another size: bilinear|bicubic (antialiased)|nearest|error
    crop_generated: tuple[int, int, int, int] | None = None  # (top, left, h, w) on generated images, before resizing
    pad_to: tuple[int, int] | None = None  # centred padding of generated and real images (PATN: 256x256)
    pad_value: int = 255  # white, as PATN's addBounding
    image_format: str = "png"  # suffix of the generated images
    ssim_data_range: float | str = 255.0  # or "generated" (PATN / Deformable-GAN scripts)
    mask_point_radius: float = 4.0  # produce_ma_mask radius (Market protocol)
    lpips_version: str = "0.1"
    alexnet_weights: str | None = None  # explicit path: must exist (else error, not "unavailable")
    inception_variant: str = "pytorch-fid"
    inception_weights: str | None = None
    fid_resize: str = "bilinear"  # to 299x299 inside the Inception network, as pytorch-fid
    fid_cache: bool = True
    fid_cache_dir: str | None = None  # None: default_cache_dir()
    real_stats: str | None = None  # precomputed real statistics (.npz); overrides real_set
    psnr_cap: float | None = None  # None: +inf for identical images (skimage)
    allow_missing: bool = False  # evaluate the pairs that have a generated image
    batch_size: int = 16
    workers: int = 2
    device: str = "auto"
    report_cases: int = 8  # best and worst cases by SSIM in report.html
    progress: bool = True

    def check(self) -> None:
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown or not self.metrics:
            raise SPGNetError(f"--metrics: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                              f"choose from {', '.join(ALL_METRICS)}")
        if self.real_set not in SPLITS:
            raise SPGNetError(f"--real-set must be one of {', '.join(SPLITS)}, got {self.real_set!r}")
        if self.resize not in RESIZE_METHODS:
            raise SPGNetError(f"--resize must be one of {', '.join(RESIZE_METHODS)}, got {self.resize!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise SPGNetError(f"--image-format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")
        for name, hw in (("--size", self.size), ("--pad-to", self.pad_to)):
            if hw is not None and (len(hw) != 2 or min(hw) <= 0):
                raise SPGNetError(f"{name} must be two positive integers H W, got {list(hw)}")
        crop = self.crop_generated
        if crop is not None and (len(crop) != 4 or min(crop) < 0 or min(crop[2:]) <= 0):
            raise SPGNetError(f"--crop-generated must be TOP LEFT H W (non-negative, positive size), got {list(crop)}")
        if self.batch_size <= 0:
            raise SPGNetError(f"--batch-size must be positive, got {self.batch_size}")
        if not 0 <= self.pad_value <= 255:
            raise SPGNetError(f"pad value must be in 0..255, got {self.pad_value}")


@dataclass
class EvalResult:
    """What ``evaluate_directory`` measured (also written to ``out_dir``)."""

    metrics: dict[str, float]  # headline value of each computed metric
    details: dict[str, dict]  # each metric's full compute() output
    unavailable: dict[str, str]  # requested metric -> why it could not be computed
    protocol: dict
    counts: dict[str, int]
    missing: list[str]  # generated files expected but not found
    per_image: list[dict]  # one row per evaluated pair (pair, from, to, per-image metrics)
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every requested metric was computed, 3 when some were unavailable."""
        return EXIT_SOME_UNAVAILABLE if self.unavailable else EXIT_ALL_COMPUTED


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How every image is brought to the evaluated geometry.

    Real images (targets and the FID reference set) go through the dataset loader's
    geometry: ``crop`` on the disk image, antialiased bilinear resize to ``size``,
    rounding to 8 bits. Generated images are cropped by ``crop_generated`` when given
    (e.g. 256x256 output scored at 256x176); then, if not at ``size``, resized with
    ``resize``. Finally both are padded to ``pad_to`` (centred, ``pad_value``) when asked.
    """

    size: tuple[int, int]
    crop: tuple[int, int, int, int] | None
    resize: str
    pad_to: tuple[int, int] | None
    pad_value: int
    crop_generated: tuple[int, int, int, int] | None = None

    @property
    def offset(self) -> tuple[int, int]:
        """(top, left) of the image inside the padded canvas."""
        if self.pad_to is None:
            return 0, 0
        return (self.pad_to[0] - self.size[0]) // 2, (self.pad_to[1] - self.size[1]) // 2

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple(self.pad_to) if self.pad_to is not None else tuple(self.size)

    def describe(self) -> dict:
        return {
            "eval_size": list(self.size),
            "real_images": f"crop {list(self.crop) if self.crop else 'none'}, then bilinear (antialiased) resize "
                           f"to {self.size[0]}x{self.size[1]} (the dataset loader's geometry), 8-bit",
            "generated_crop": list(self.crop_generated) if self.crop_generated else None,
            "generated_resize": self.resize if self.resize != "error" else "none (size mismatch is an error)",
            "padding": None if self.pad_to is None else {
                "to": list(self.pad_to), "value": self.pad_value, "offset_top_left": list(self.offset)},
        }

    def describe_real(self) -> dict:
        """What the real images' pixels depend on (the FID statistics cache key)."""
        return {"crop": list(self.crop) if self.crop else None, "size": list(self.size),
                "pad_to": list(self.pad_to) if self.pad_to else None, "pad_value": self.pad_value}

    def pad(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``(3, H, W)`` at ``size`` -> ``(3, *out_size)``."""
        if self.pad_to is None:
            return image
        top, left = self.offset
        canvas = torch.full((image.shape[0], *self.pad_to), self.pad_value, dtype=image.dtype)
        canvas[:, top : top + self.size[0], left : left + self.size[1]] = image
        return canvas

    def pad_keypoints(self, kp: torch.Tensor) -> torch.Tensor:
        """``(..., 18, 2)`` (x, y) at ``size`` -> padded-canvas coordinates; missing stay -1."""
        if self.pad_to is None:
            return kp
        top, left = self.offset
        missing = (kp < 0).any(dim=-1, keepdim=True)
        return torch.where(missing, torch.full_like(kp, -1.0), kp + torch.tensor([left, top], dtype=kp.dtype))

    def fit_generated(self, image: torch.Tensor, path: Path) -> tuple[torch.Tensor, bool]:
        """uint8 ``(3, h, w)`` generated image -> uint8 ``(3, *size)`` and whether it was resized."""
        if self.crop_generated is not None:
            top, left, h, w = self.crop_generated
            if top + h > image.shape[1] or left + w > image.shape[2]:
                raise SPGNetError(f"{path}: --crop-generated {list(self.crop_generated)} does not fit in the "
                                  f"{image.shape[1]}x{image.shape[2]} generated image")
            image = image[:, top : top + h, left : left + w]
        if tuple(image.shape[-2:]) == tuple(self.size):
            return image, False
        if self.resize == "error":
            raise SPGNetError(f"{path}: generated image is {image.shape[1]}x{image.shape[2]}, the evaluation size is "
                              f"{self.size[0]}x{self.size[1]} (choose --resize bilinear|bicubic|nearest or --size)")
        x = image[None].float()
        if self.resize == "nearest":
            x = F.interpolate(x, size=self.size, mode="nearest-exact")
        else:
            x = F.interpolate(x, size=self.size, mode=self.resize, align_corners=False, antialias=True)
        return x[0].round().clamp(0, 255).to(torch.uint8), True

    def load_real(self, path: Path) -> torch.Tensor:
        """A real image file -> uint8 ``(3, *out_size)`` (dataset geometry, then padding)."""
        from spgnet.data.dataset import check_crop, decode_rgb, resize_tensor

        image = decode_rgb(path)
        if self.crop is not None:
            check_crop(self.crop, image.shape[1], image.shape[2], path)
            top, left, h, w = self.crop
            image = image[:, top : top + h, left : left + w]
        image = resize_tensor(image.float(), self.size, "bilinear").round().clamp(0, 255).to(torch.uint8)
        return self.pad(image)


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 (exact for images that came from 8-bit files)."""
    return image.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


# --------------------------------------------------------------------------- loader items


class _EvalItems(Dataset):
    """Item i of the evaluated pairs: generated and real images (uint8, evaluated
    geometry), target keypoints (padded coordinates), target and predicted parsing."""

    def __init__(self, pairs: PairDataset, indices: list[int], generated: list[Path], geometry: Geometry,
                 parsing_files: list[Path] | None, need_target_parsing: bool):
        self.pairs, self.indices, self.generated = pairs, indices, generated
        self.geometry, self.parsing_files, self.need_target_parsing = geometry, parsing_files, need_target_parsing

    def __len__(self) -> int:
        return len(self.indices)

    def load_pair_image(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A dataset image as the pair loader makes it: uint8 (3, size), kp, parsing."""
        image, kp, parsing, _ = self.pairs.load_item(name)
        return _to_uint8(image), kp, parsing

    def __getitem__(self, i: int) -> dict:
        from spgnet.utils.io import load_image, load_label_png

        g = self.geometry
        _, to_name = self.pairs.pairs[self.indices[i]]
        real, kp, target_parsing = self.load_pair_image(to_name)
        path = self.generated[i]
        fake = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1)
        fake, resized = g.fit_generated(fake, path)
        item = {"i": i, "fake": g.pad(fake), "real": g.pad(real), "target_kp": g.pad_keypoints(kp),
                "resized": resized, "parsing_resized": False}
        if self.need_target_parsing:
            item["target_parsing"] = target_parsing
        if self.parsing_files is not None:
            pred = torch.from_numpy(load_label_png(self.parsing_files[i]).astype(np.int64))
            if tuple(pred.shape) != tuple(g.size):
                pred = F.interpolate(pred[None, None].float(), size=g.size, mode="nearest-exact")[0, 0].long()
                item["parsing_resized"] = True
            item["pred_parsing"] = pred
        return item


class _RealImages(Dataset):
    def __init__(self, files: list[Path], geometry: Geometry):
        self.files, self.geometry = files, geometry

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.geometry.load_real(self.files[i])


def _loader(dataset: Dataset, options: EvalOptions) -> DataLoader:
    return DataLoader(dataset, batch_size=options.batch_size, shuffle=False, num_workers=max(0, options.workers),
                      drop_last=False)  # every image counts: no dropped remainder


# --------------------------------------------------------------------------- metric set-up


def load_dataset_config(path: str | os.PathLike | None, overrides: Sequence[str] = (), root: str | None = None) -> DatasetConfig:
    """The ``data`` section of a config YAML (e.g. ``configs/market.yaml`` or a run's
    ``config.yaml``; None: the defaults) after ``data.key=value`` overrides; ``root``
    replaces ``data.root``."""
    cfg = load_config(path, list(overrides))
    if root is not None:
        cfg.data.root = str(root)
    return cfg.data


def _weights_error(exc: MissingWeightsError, explicit: str | None) -> str:
    if explicit is not None:  # a path the user gave must exist: bad input, not "unavailable"
        raise exc
    return str(exc)


def _make_lpips_metrics(wanted: list[str], options: EvalOptions, device, unavailable: dict) -> tuple[dict, dict]:
    from spgnet.evaluation.metrics import LPIPS

    if importlib.util.find_spec("lpips") is None:
        unavailable.update({name: "LPIPS needs the 'lpips' package: pip install 'spgnet[eval]'" for name in wanted})
        return {}, {}
    try:
        net = LPIPS(options.lpips_version, options.alexnet_weights).to(device)
    except MissingWeightsError as exc:
        reason = _weights_error(exc, options.alexnet_weights)
        unavailable.update({name: reason for name in wanted})
        return {}, {}
    made = {}
    for name in wanted:
        opts = {"point_radius": options.mask_point_radius} if name == "mask_lpips" else {}
        made[name] = create_metric(name, net=net, **opts)
    heads = f"lpips {importlib.metadata.version('lpips')} package, weights/v{net.version}/alex.pth"
    return made, {"lpips": net.alexnet_weights, "lpips_heads": heads}


def _real_statistics(data: DatasetConfig, options: EvalOptions, geometry: Geometry, model, device) -> tuple:
    """FID statistics of every image of the real set, in the evaluated geometry, cached."""
    from spgnet.evaluation.metrics import FIDStatistics
    from spgnet.evaluation.metrics.fid import compute_statistics, statistics_cache_key

    if options.real_stats is not None:
        stats = FIDStatistics.load(options.real_stats)
        return stats, {"source": str(options.real_stats), "images": stats.count}
    image_dir = data.path("image_dir", options.real_set)
    files = [image_dir / name for name in sorted(index_image_dir(image_dir).values())]
    if not files:
        raise SPGNetError(f"{image_dir}: no images in the FID real set (split '{options.real_set}')")
    info = {"split": options.real_set, "image_dir": str(image_dir), "images": len(files), "selection": "every image"}
    key_protocol = {**model.protocol, "real_geometry": geometry.describe_real()}
    cache_path = None
    if options.fid_cache:
        cache_dir = Path(options.fid_cache_dir) if options.fid_cache_dir else default_cache_dir()
        cache_path = cache_dir / f"fid-stats-{statistics_cache_key(files, key_protocol)[:24]}.npz"
        info["cache"] = str(cache_path)
        if cache_path.exists():
            info["cached"] = True
            return FIDStatistics.load(cache_path), info
    loader = _loader(_RealImages(files, geometry), options)
    batches = (_to_float(b) for b in tqdm(loader, desc=f"FID real set ({options.real_set})", disable=not options.progress,
                                          dynamic_ncols=True))
    stats = compute_statistics(batches, model, options.batch_size, device)
    if cache_path is not None:
        stats.save(cache_path)
    info["cached"] = False
    return stats, info


def _make_fid_metric(data, options, geometry, device, unavailable: dict) -> tuple:
    from spgnet.evaluation.metrics import InceptionFeatures

    try:
        model = InceptionFeatures(options.inception_variant, options.inception_weights, resize=options.fid_resize).to(device)
    except MissingWeightsError as exc:
        unavailable["fid"] = _weights_error(exc, options.inception_weights)
        return None, {}, {}
    stats, info = _real_statistics(data, options, geometry, model, device)
    metric = create_metric("fid", real_stats=stats, model=model)
    return metric, {"fid": model.weights_source}, info


def _keypoint_detector(unavailable: dict):
    """``spgnet.photo.detect.detect_keypoints`` (uint8 ``(N, H, W, 3)`` -> ``(N, 18, 2)``), or
    None with the reason recorded."""
    try:
        module = importlib.import_module("spgnet.photo.detect")
        return module.detect_keypoints
    except (ImportError, AttributeError) as exc:
        unavailable["pckh"] = (f"PCKh needs a keypoint detector: spgnet.photo.detect.detect_keypoints is not "
                               f"available ({type(exc).__name__}: {exc})")
        return None


# --------------------------------------------------------------------------- the evaluation


def _match_generated(pairs: PairDataset, generated_dir: Path, options: EvalOptions):
    """-> (pair indices to evaluate, their files, missing paths, duplicate count, unmatched names)."""
    suffix = f".{options.image_format}"
    present = {e.name for e in os.scandir(generated_dir) if e.is_file()}
    indices, files, missing, seen = [], [], [], set()
    for i, (a, b) in enumerate(pairs.pairs):
        name = pair_name(a, b)
        if name in seen:
            continue
        seen.add(name)
        if name + suffix in present:
            indices.append(i)
            files.append(generated_dir / (name + suffix))
        else:
            missing.append(str(generated_dir / (name + suffix)))
    duplicates = len(pairs.pairs) - len(seen)
    expected = {name + suffix for name in seen}
    unmatched = sorted(n for n in present if n.endswith(suffix) and n not in expected and not n.endswith(PARSING_SUFFIX))
    return indices, files, missing, duplicates, unmatched


def _parsing_files(generated: list[Path], unavailable: dict, generated_dir: Path) -> list[Path] | None:
    paths = [p.with_name(p.stem + PARSING_SUFFIX) for p in generated]
    exists = [p.is_file() for p in paths]
    if not any(exists):
        unavailable["parsing_miou"] = (f"no predicted parsing in {generated_dir} (stage-1 labels are read from "
                                       f"<from-stem>___<to-stem>{PARSING_SUFFIX} beside each generated image)")
        return None
    if not all(exists):
        absent = [str(p) for p, e in zip(paths, exists) if not e]
        raise SPGNetError(f"{absent[0]}: predicted parsing missing ({len(absent)} of {len(paths)} pairs lack one; "
                          f"provide all or leave parsing_miou out of --metrics)")
    return paths


def evaluate_directory(
    generated_dir: str | os.PathLike,
    cfg: Config | DatasetConfig,
    split: str = "test",
    options: EvalOptions | None = None,
    out_dir: str | os.PathLike | None = None,
) -> EvalResult:
    """Score the generated images of ``split`` against the dataset (module docstring)
    and write the outputs to ``out_dir`` (default ``generated_dir/eval``)."""
    from spgnet.evaluation.report import write_outputs
    options = options or EvalOptions()
    options.check()
    data = cfg.data if isinstance(cfg, Config) else cfg
    generated_dir = Path(generated_dir)
    if not generated_dir.is_dir():
        raise SPGNetError(f"{generated_dir}: generated-images folder not found")
    if split not in SPLITS:
        raise SPGNetError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    size = tuple(int(v) for v in (options.size or data.load_size))
    if options.pad_to is not None and (options.pad_to[0] < size[0] or options.pad_to[1] < size[1]):
        raise SPGNetError(f"--pad-to {list(options.pad_to)} is smaller than the evaluation size {list(size)}")
    device = resolve_device(options.device, what="--device")
    geometry = Geometry(size, tuple(int(v) for v in data.crop) if data.crop else None, options.resize,
                        tuple(int(v) for v in options.pad_to) if options.pad_to else None, int(options.pad_value),
                        tuple(int(v) for v in options.crop_generated) if options.crop_generated else None)

    eval_data = dataclasses.replace(data, load_size=list(size), hflip=False, use_flow=False,
                                    pose_in_loader=False, onehot_in_loader=False)
    pairs = PairDataset(eval_data, split, return_flow=False)
    indices, files, missing, duplicates, unmatched = _match_generated(pairs, generated_dir, options)
    if not indices:
        raise SPGNetError(f"{generated_dir}: none of the {len(pairs.pairs)} pairs of {pairs.paths.pairs_file} has a "
                          f"generated image (expected <from-stem>___<to-stem>.{options.image_format}, "
                          f"e.g. {Path(missing[0]).name})")
    if missing and not options.allow_missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SPGNetError(f"{missing[0]}: generated image missing{more}; {len(missing)} of {len(indices) + len(missing)} "
                          f"pairs of {pairs.paths.pairs_file} lack one (pass --allow-missing to evaluate the others)")

    wanted = list(dict.fromkeys(options.metrics))
    unavailable: dict[str, str] = {}
    weights: dict[str, str] = {}
    metrics: list[Metric] = []
    real_info: dict = {}
    for name in ("ssim", "mask_ssim", "psnr", "l1"):
        if name in wanted:
            opts = {"ssim": {"data_range": options.ssim_data_range},
                    "mask_ssim": {"data_range": options.ssim_data_range, "point_radius": options.mask_point_radius}}
            metrics.append(create_metric(name, **opts.get(name, {})))
    lpips_names = [n for n in ("lpips", "mask_lpips") if n in wanted]
    if lpips_names:
        made, w = _make_lpips_metrics(lpips_names, options, device, unavailable)
        metrics += made.values()
        weights.update(w)
    if "fid" in wanted:
        fid_metric, w, real_info = _make_fid_metric(data, options, geometry, device, unavailable)
        if fid_metric is not None:
            metrics.append(fid_metric)
            weights.update(w)
    detect = _keypoint_detector(unavailable) if "pckh" in wanted else None
    if detect is not None:
        metrics.append(create_metric("pckh"))
    parsing_files = _parsing_files(files, unavailable, generated_dir) if "parsing_miou" in wanted else None
    if parsing_files is not None:
        metrics.append(create_metric("parsing_miou"))

    evaluator = BatchEvaluator(metrics, device, psnr_cap=options.psnr_cap)
    items = _EvalItems(pairs, indices, files, geometry, parsing_files, need_target_parsing=parsing_files is not None)
    rows = [{"pair": pair_name(*pairs.pairs[i]), "from": pairs.pairs[i][0], "to": pairs.pairs[i][1]} for i in indices]
    counts = {"pairs": len(pairs.pairs) - duplicates, "evaluated": len(indices), "missing_generated": len(missing),
              "duplicate_pairs": duplicates, "unmatched_generated": len(unmatched), "resized_generated": 0,
              "resized_parsing": 0}
    for batch in tqdm(_loader(items, options), desc=f"evaluate {split}", disable=not options.progress, dynamic_ncols=True):
        fake, real = _to_float(batch["fake"]), _to_float(batch["real"])
        pred_kp = None
        if detect is not None:
            pred_kp = _detect(detect, batch["fake"], unavailable)
            if pred_kp is None:
                detect = None
                evaluator.metrics.pop("pckh", None)
        values = evaluator.update(fake, real, pred_parsing=batch.get("pred_parsing"),
                                  target_parsing=batch.get("target_parsing"), target_kp=batch["target_kp"], pred_kp=pred_kp)
        for name, v in values.items():
            for i, value in zip(batch["i"].tolist(), v.tolist()):
                rows[i][name] = value
        counts["resized_generated"] += int(batch["resized"].sum())
        counts["resized_parsing"] += int(batch["parsing_resized"].sum())

    details: dict[str, dict] = {}
    for name, metric in evaluator.metrics.items():
        try:
            details[name] = metric.compute()
        except SPGNetError as exc:  # e.g. FID of fewer than 2 images
            unavailable[name] = str(exc)
    values = {name: float(details[name][name]) for name in wanted if name in details}
    if "psnr" in values:
        counts["identical_pairs"] = sum(1 for r in rows if r.get("psnr") == float("inf"))

    protocol = {
        "spgnet_version": __version__,
        "generated_dir": str(generated_dir),
        "dataset_root": str(data.root),
        "split": split,
        "pairs_file": str(pairs.paths.pairs_file),
        "matching": f"<from-stem>___<to-stem>.{options.image_format} per pair of the pairs file (duplicates once)",
        "image_format": options.image_format,
        **geometry.describe(),
        "target_keypoints": str(pairs.paths.annotation_file),
        "predicted_parsing": f"<from-stem>___<to-stem>{PARSING_SUFFIX} in the generated folder, "
                             "nearest-resized to the evaluation size when needed",
        "target_parsing": str(pairs.paths.parsing_dir),
        "psnr_cap": options.psnr_cap,
        "device": str(device),
        "batch_size": options.batch_size,
        "metrics": {name: {"matches": METRICS[name].matches, **evaluator.protocol.get(name, {})} for name in wanted},
        "weights": weights,
    }
    if "fid" in wanted:
        protocol["fid_real_set"] = real_info or {"split": options.real_set}
    if "pckh" in wanted:
        protocol["pckh_detector"] = "spgnet.photo.detect.detect_keypoints on the evaluated generated images"
    result = EvalResult(values, details, {k: unavailable[k] for k in wanted if k in unavailable}, protocol, counts,
                        missing, rows, Path(out_dir) if out_dir is not None else generated_dir / "eval")
    result.protocol["unmatched_generated_examples"] = unmatched[:20]
    write_outputs(result, items, options.report_cases)
    return result


def _detect(detect, fake_uint8: torch.Tensor, unavailable: dict) -> torch.Tensor | None:
    """Keypoints ``(B, 18, 2)`` detected on uint8 ``(B, 3, H, W)`` images, or None (reason
    recorded) when the detector's own weights are missing."""
    images = fake_uint8.permute(0, 2, 3, 1).contiguous().numpy()
    try:
        kp = detect(images)
    except MissingWeightsError as exc:
        unavailable["pckh"] = f"PCKh needs the keypoint detector's weights: {exc}"
        return None
    kp = torch.as_tensor(np.asarray(kp, dtype=np.float32))
    check_keypoints(kp, "the keypoint detector's output", ndims=(3,), batch=images.shape[0])
    return kp


__all__ = [
    "ALL_METRICS", "EvalOptions", "EvalResult", "Geometry", "EXIT_ALL_COMPUTED",
    "EXIT_SOME_UNAVAILABLE", "default_cache_dir", "evaluate_directory", "load_dataset_config",
]
