"""The official SPGNet release's pretrained weights <-> one of our checkpoints
(``spgnet convert-official``; docs/official.md §3, docs/design.md §8 and §14).

:func:`convert_official` reads the official generator ``checkpoints/<id>/latest_net_netG.pth``
and, optionally, the flow network folder ``checkpoints/FlowReg_<dataset>`` (its
``best_net_netF.pth`` and ``train_opt.json``), checks every tensor against the official
structure of the chosen dataset (names and shapes from the ``official-*`` preset built on
the meta device, before anything big is built), and writes a generator-only checkpoint
(models ``generator`` and, with the flow network, ``flow``) whose config runs the official
test path: 18 binary keypoint disks, the official noise layout, the official image size,
``train.flow: official`` with the flow network (``part-affine`` without it), no stage 1.

:func:`export_official` is the reverse: from one of our checkpoints whose generator has an
official structure, the files the official code loads with ``load_state_dict(strict=True)``
(``latest_net_netG.pth``; ``FlowReg/best_net_netF.pth`` + ``FlowReg/train_opt.json`` when the
checkpoint holds a flow network), written in torch's legacy (pre-1.6) serialization so that
the torch 1.2 the release runs on reads them too (so does ``torch.load(weights_only=True)``).

Official ``.pth`` files are plain state dicts and are only ever read with
``torch.load(weights_only=True)``. Every bad input is one :class:`~spgnet.SPGNetError` line
naming the file and, where there is one, the official tensor.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from spgnet import SPGNetError, __version__
from spgnet.config import Config, DatasetConfig, PoseConfig, TrainConfig, config_from_dict, config_to_dict
from spgnet.models.config import FlowNetConfig, model_preset
from spgnet.models.official import official_state_dict_to_ours, ours_state_dict_to_official
from spgnet.models.official_flow import (DISK_RADIUS, OfficialFlowNet, check_official_flow_state,
                                         load_official_flow_state, official_flow_shapes, read_train_opt)
from spgnet.pose import NUM_KEYPOINTS
from spgnet.utils.checkpoint import read_checkpoint_config, read_checkpoint_info, read_model_state, save_checkpoint
from spgnet.utils.io import atomic_write, atomic_write_text
from spgnet.utils.weights import load_release_state_dict

DATASETS: tuple[str, ...] = ("deepfashion", "market")
IMAGE_SIZE: dict[str, list[int]] = {"deepfashion": [256, 256], "market": [128, 64]}  # (H, W) the official nets run at
DEFAULT_DATA_ROOT: dict[str, str] = {d: f"data/official-{d}" for d in DATASETS}  # `spgnet import-official --out`
GENERATOR_FILE = "latest_net_netG.pth"
FLOW_WEIGHTS_FILE = "best_net_netF.pth"
TRAIN_OPT_FILE = "train_opt.json"
FLOW_EXPORT_DIR = "FlowReg"
OFFICIAL_FLOW_MAX_NF = 512  # what the release builds FlowUnet with (its constructor default)
TRAIN_OPT_MAX_NF = 128  # the option value the release's train_opt.json files hold (not passed to FlowUnet)


def _preset(dataset: str) -> str:
    return f"official-{dataset}"


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise SPGNetError(f"dataset {dataset!r}: unknown (choose from {', '.join(DATASETS)})")


@functools.lru_cache(maxsize=None)
def _structure(dataset: str) -> tuple[dict[str, tuple[tuple[int, ...], bool]],
                                      dict[str, tuple[tuple[int, ...], torch.dtype]]]:
    """(official name -> (shape, floating point), our name -> (shape, dtype)) of the official
    ``dataset`` generator, from its preset built on the meta device (no memory, no init)."""
    from spgnet.models.generator import SPGNetGenerator

    with torch.device("meta"):
        generator = SPGNetGenerator(model_preset(_preset(dataset)).generator)
    ours = generator.state_dict()
    official = ours_state_dict_to_official(ours)
    return ({name: (tuple(t.shape), t.is_floating_point()) for name, t in official.items()},
            {name: (tuple(t.shape), t.dtype) for name, t in ours.items()})


def official_generator_shapes(dataset: str) -> dict[str, tuple[int, ...]]:
    """Official name -> shape of every tensor of the official ``dataset`` generator's state
    dict (what ``latest_net_netG.pth`` holds, buffers included)."""
    _check_dataset(dataset)
    return {name: shape for name, (shape, _) in _structure(dataset)[0].items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_official_generator(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an official ``latest_net_netG.pth`` (``weights_only`` load), on the
    CPU: a ``module.`` prefix (DataParallel) removed, float16 / bfloat16 made float32, and a
    BatchNorm without ``num_batches_tracked`` (torch 0.4 files) given it as 0, as torch does."""
    path = Path(path)
    if path.is_dir():
        raise SPGNetError(f"{path}: is a folder; give the generator file itself "
                          f"(checkpoints/<id>/{GENERATOR_FILE})")
    return load_release_state_dict(path, "state dict of the official generator")


def _problems(state: Mapping[str, torch.Tensor], dataset: str) -> list[str]:
    """What keeps ``state`` (official names) from being the official ``dataset`` generator,
    most telling first: missing tensors, unexpected ones, shapes, then dtypes."""
    expected = _structure(dataset)[0]
    what = f"the official {dataset} generator"
    out = [f"missing official tensor {n} (shape {shape}) of {what}"
           for n, (shape, _) in expected.items() if n not in state]
    out += [f"unexpected tensor {n} (not in {what})" for n in state if n not in expected]
    common = [n for n in expected if n in state]
    out += [f"official tensor {n} has shape {tuple(state[n].shape)}, {what} has {expected[n][0]}"
            for n in common if tuple(state[n].shape) != expected[n][0]]
    out += [f"official tensor {n} is {state[n].dtype}, {what} has a "
            f"{'floating-point' if expected[n][1] else 'integer'} tensor there"
            for n in common if state[n].is_floating_point() != expected[n][1]]
    return out


def _fitting(state: Mapping[str, torch.Tensor], dataset: str) -> int:
    expected = _structure(dataset)[0]
    return sum(1 for n, t in state.items() if n in expected and tuple(t.shape) == expected[n][0])


def check_official_generator(state: Mapping[str, torch.Tensor], dataset: str, source: str) -> None:
    """SPGNetError (one line starting with ``source``) unless ``state`` (official names, as
    :func:`read_official_generator` returns) is exactly the official ``dataset`` generator;
    the other dataset's generator is recognised and named."""
    _check_dataset(dataset)
    problems = _problems(state, dataset)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    other = next(d for d in DATASETS if d != dataset)
    other_problems = _problems(state, other)
    if len(other_problems) < len(problems):
        fits = (f"all {len(state)} tensors fit the official-{other} structure" if not other_problems else
                f"{_fitting(state, other)} of its {len(state)} tensors fit the official-{other} structure, "
                f"{_fitting(state, dataset)} the official-{dataset} one; against {other}: {other_problems[0]}")
        raise SPGNetError(f"{source}: looks like the {other} generator, not the {dataset} one ({fits}); "
                          f"use --dataset {other}")
    names = list(state)
    if any(n.startswith(("unet_block.", "conv_downsample.")) for n in names):
        hint = (f"; this looks like the flow network's weights ({FLOW_WEIGHTS_FILE}): give its folder "
                "with --flow-dir and the generator's file with --generator")
    elif any(n in _structure(dataset)[1] for n in names):
        hint = "; it has this project's parameter names, not the official ones (already one of our generators?)"
    else:
        hint = ""
    raise SPGNetError(f"{source}: {problems[0]}{more}{hint}")


def _flow_cfg_for(flow_dir: Path, dataset: str) -> tuple[FlowNetConfig, dict[str, torch.Tensor], Path, Path]:
    if not flow_dir.is_dir():
        raise SPGNetError(f"{flow_dir}: flow network folder not found (expected checkpoints/FlowReg_{dataset} "
                          f"with {FLOW_WEIGHTS_FILE} and {TRAIN_OPT_FILE})")
    opt_path, weights = flow_dir / TRAIN_OPT_FILE, flow_dir / FLOW_WEIGHTS_FILE
    cfg = replace(read_train_opt(opt_path), disk_radius=float(DISK_RADIUS[dataset]))
    if cfg.start_scale != 2:
        raise SPGNetError(f"{opt_path}: start_scale is {cfg.start_scale}; the official forward upsamples its "
                          "output by 2 whatever start_scale is, so only start_scale 2 gives flows at the image size")
    state = load_official_flow_state(weights)
    if not state:
        raise SPGNetError(f"{weights}: not a state dict of the flow network (it holds no tensors)")
    try:
        check_official_flow_state(state, cfg, source=str(weights))
    except SPGNetError as exc:
        raise SPGNetError(f"{exc}, as {opt_path} describes it; do the two files belong together?") from None
    for name, value in state.items():
        if value.is_floating_point() and value.dtype != torch.float32:
            state[name] = value.float()
    h, w = IMAGE_SIZE[dataset]
    with torch.device("meta"):
        net = OfficialFlowNet(cfg)
    try:
        net.check_input(torch.empty(1, cfg.input_nc, h, w, device="meta"))
    except SPGNetError as exc:
        raise SPGNetError(f"{opt_path}: the flow network cannot run at the official {dataset} size {h}x{w} "
                          f"({exc}); is it the {dataset} flow network?") from None
    return cfg, state, weights, opt_path


def official_config(dataset: str, data_root: str | os.PathLike | None = None,
                    flow_net: FlowNetConfig | None = None) -> Config:
    """The config of a converted official ``dataset`` model (validated): the
    ``official-<dataset>`` structure with the official noise layout, 18 binary keypoint
    disks, the official image size, and ``train.flow: official`` with ``flow_net`` (its
    ``disk_radius`` set to the dataset's) or ``part-affine`` without it."""
    _check_dataset(dataset)
    model = model_preset(_preset(dataset))
    model = replace(model, generator=replace(model.generator, noise_layout="official"))
    if flow_net is not None:
        model = replace(model, flow_net=replace(flow_net, disk_radius=float(DISK_RADIUS[dataset])))
    size = IMAGE_SIZE[dataset]
    data = DatasetConfig(root=str(data_root) if data_root is not None else DEFAULT_DATA_ROOT[dataset],
                         image_size=list(size), load_size=list(size),
                         pose=PoseConfig(kind="disk", disk_radius=float(DISK_RADIUS[dataset])))
    cfg = Config(name=_preset(dataset), data=data, model=model,
                 train=TrainConfig(flow="official" if flow_net is not None else "part-affine"))
    return config_from_dict(config_to_dict(cfg), f"official {dataset} config")  # what loading it will do


def convert_official(generator: str | os.PathLike, dataset: str, out: str | os.PathLike,
                     flow_dir: str | os.PathLike | None = None,
                     data_root: str | os.PathLike | None = None) -> Path:
    """Convert the official ``dataset`` generator file ``generator`` (and the flow network
    folder ``flow_dir``, if given) into one of our checkpoints at ``out``; returns its path.
    See the module docstring; every bad input is one SPGNetError line naming the file."""
    _check_dataset(dataset)
    generator = Path(generator)
    official = read_official_generator(generator)
    check_official_generator(official, dataset, str(generator))
    flow = _flow_cfg_for(Path(flow_dir), dataset) if flow_dir is not None else None
    cfg = official_config(dataset, data_root, flow[0] if flow else None)

    ours = official_state_dict_to_ours(official)
    expected = _structure(dataset)[1]
    if {n: tuple(t.shape) for n, t in ours.items()} != {n: s for n, (s, _) in expected.items()}:
        raise SPGNetError(f"{generator}: the converted names do not fit the official-{dataset} generator")  # a bug
    ours = {n: t.to(expected[n][1]) for n, t in ours.items()}
    models: dict[str, Mapping[str, torch.Tensor]] = {"generator": ours}
    source = {"format": "official SPGNet release (github cszy98/SPGNet)", "dataset": dataset,
              "preset": _preset(dataset), "converted_by": f"spgnet {__version__}",
              "generator": {"path": str(generator.resolve()), "sha256": _sha256(generator)}}
    if flow is not None:
        _, flow_state, weights, opt_path = flow
        models["flow"] = flow_state
        source["flow_weights"] = {"path": str(weights.resolve()), "sha256": _sha256(weights)}
        source["train_opt"] = {"path": str(opt_path.resolve()), "sha256": _sha256(opt_path)}
    return save_checkpoint(out, models=models, config_dict=cfg, extra={"converted_from": source})


# --------------------------------------------------------------------------- export


def _atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` with the legacy serialization (readable by the torch 1.2 the release
    runs on, and by ``weights_only=True``), written atomically."""
    atomic_write(path, lambda f: torch.save(obj, f, _use_new_zipfile_serialization=False))


def _official_dataset_of(official: Mapping[str, torch.Tensor], where: str) -> str:
    """The dataset whose official generator ``official`` is exactly; SPGNetError otherwise."""
    problems = {d: _problems(official, d) for d in DATASETS}
    for dataset, found in problems.items():
        if not found:
            return dataset
    closest = min(DATASETS, key=lambda d: len(problems[d]))
    raise SPGNetError(f"{where}: its generator is not an official SPGNet structure (the official-deepfashion "
                      f"or official-market preset); against official-{closest}: {problems[closest][0]}")


def _train_opt(cfg: FlowNetConfig, dataset: str) -> dict:
    radius = cfg.disk_radius
    return {"id": f"FlowReg_{dataset}", "which_model": "unet", "norm": cfg.norm, "nf": cfg.nf,
            "max_nf": TRAIN_OPT_MAX_NF, "start_scale": cfg.start_scale, "num_scale": cfg.num_scale,
            "input_type1": "joint", "input_type2": "joint", "joint_nc": NUM_KEYPOINTS, "joint_mode": "binary",
            "joint_radius": int(radius) if float(radius).is_integer() else radius, "dataset_name": dataset,
            "image_size": IMAGE_SIZE[dataset], "is_train": False}


def export_official(checkpoint: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the official release's files from one of our checkpoints whose generator has an
    official structure: ``out_dir/latest_net_netG.pth`` and, when it holds a flow network,
    ``out_dir/FlowReg/best_net_netF.pth`` + ``out_dir/FlowReg/train_opt.json``. Returns
    ``{"generator": …, "flow_weights": …, "train_opt": …}`` (the files written)."""
    info = read_checkpoint_info(checkpoint)
    where = info["path"]
    cfg = config_from_dict(read_checkpoint_config(checkpoint), f"{where} config")
    if "generator" not in info.get("models", {}):
        stored = ", ".join(info.get("models", {})) or "none"
        raise SPGNetError(f"{where}: no generator in this checkpoint (has: {stored})")
    try:
        official = ours_state_dict_to_official(read_model_state(checkpoint, "generator"))
    except SPGNetError as exc:
        raise SPGNetError(f"{where}: its generator is not an official SPGNet structure (the official-deepfashion "
                          f"or official-market preset): {exc}") from None
    dataset = _official_dataset_of(official, where)
    # the generator's module order (load_state_dict ignores order), each tensor with its own storage
    official = {n: official[n].detach().clone().contiguous() for n in _structure(dataset)[0]}

    flow = None
    if "flow" in info["models"]:
        flow_cfg = cfg.model.flow_net
        state = read_model_state(checkpoint, "flow")
        check_official_flow_state(state, flow_cfg, source=f"{where} flow network")
        if flow_cfg.input_nc != 2 * NUM_KEYPOINTS:
            raise SPGNetError(f"{where}: model.flow_net.input_nc is {flow_cfg.input_nc}; the official flow network "
                              f"reads {2 * NUM_KEYPOINTS} channels (the keypoint disks of both persons)")
        if official_flow_shapes(replace(flow_cfg, max_nf=OFFICIAL_FLOW_MAX_NF)) != official_flow_shapes(flow_cfg):
            raise SPGNetError(f"{where}: model.flow_net.max_nf is {flow_cfg.max_nf}; the official code builds its "
                              f"flow network with {OFFICIAL_FLOW_MAX_NF}, so it could not load these weights")
        order = official_flow_shapes(flow_cfg)  # the official state-dict order
        flow = ({n: state[n].detach().clone().contiguous() for n in order}, _train_opt(flow_cfg, dataset))

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SPGNetError(f"{out_dir}: exists and is not a folder")
    written = {"generator": out_dir / GENERATOR_FILE}
    _atomic_torch_save(official, written["generator"])
    if flow is not None:
        written["flow_weights"] = out_dir / FLOW_EXPORT_DIR / FLOW_WEIGHTS_FILE
        written["train_opt"] = out_dir / FLOW_EXPORT_DIR / TRAIN_OPT_FILE
        _atomic_torch_save(flow[0], written["flow_weights"])
        atomic_write_text(written["train_opt"], json.dumps(flow[1], indent=2) + "\n")
    return written


__all__ = ["DATASETS", "DEFAULT_DATA_ROOT", "FLOW_EXPORT_DIR", "FLOW_WEIGHTS_FILE", "GENERATOR_FILE", "IMAGE_SIZE",
           "TRAIN_OPT_FILE", "check_official_generator", "convert_official", "export_official", "official_config",
           "official_generator_shapes", "read_official_generator"]
