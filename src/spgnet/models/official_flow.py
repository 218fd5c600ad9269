"""The official SPGNet release's flow network: Intr-Flow's ``FlowUnet`` (docs/design.md §14;
Li et al., "Dense Intrinsic Appearance Flow for Human Pose Transfer", CVPR 2019), which the
release runs with downloaded weights ``checkpoints/FlowReg_<dataset>/best_net_netF.pth``
and constructor options ``checkpoints/FlowReg_<dataset>/train_opt.json``.

:class:`OfficialFlowNet` is our implementation of that structure; its state dict has the
official names and shapes, so those weights load with ``strict=True`` and no renaming.
With ``c = nf · start_scale`` (the stem's width) and ``max_nf = 512``:

* stem ``conv_downsample``: conv7×7 p3 (in → nf) + norm + LeakyReLU(0.1), then
  log2(start_scale) × [conv3×3 s2 p1 (n → 2n) + norm + LeakyReLU(0.1)];
* U-Net ``unet_block`` of ``num_scale`` nested levels (``.submodule``), level l = 0
  (outermost) … num_scale−1 (innermost), ``outer = min(max_nf, c·2^l)``,
  ``inner = min(max_nf, c·2^(l+1))``:

  * ``down`` = [LeakyReLU(0.2), conv4×4 s2 p1 (outer → inner), norm]; the outermost level
    has no activation, the innermost no norm;
  * ``up`` = [ReLU, ConvTranspose4×4 s2 p1 (2·inner → outer; inner → outer at the
    innermost), norm];
  * a level returns ``cat(a, up(sub(down(x))))`` where ``a = LeakyReLU(0.2)(x)``, not
    ``x``: the official activation runs in place on the level's input, so its skip carries
    the activated features; the outermost level returns ``up(…)`` alone;
  * ``predict_flow`` = [LeakyReLU(0.1), conv3×3 p1 (outer → 2)] at every level; the
    official forward evaluates all of them but returns only the outermost one (the others
    feed its multi-scale training loss), so only that one runs here;

* ``predict_vis`` = [LeakyReLU(0.1), conv3×3 p1 (min(max_nf, c) → 3)] on the outermost output.

The forward returns the outermost flow and the visibility logits, each upsampled ×2
(bilinear, ``align_corners=False``): the official constructor stores ``start_scale = 2``
whatever it is given and the forward upsamples by that, so only with ``start_scale`` 2 (the
released networks) are the outputs at the input's size. Norms: ``batch`` = BatchNorm2d
(defaults: eps 1e-5, momentum 0.1, affine) and no conv bias; ``instance`` = InstanceNorm2d
(defaults: no affine, no running statistics) and every conv with a bias; the outermost
``up`` transposed conv has a bias either way. The official options also list ``none``,
which the official constructor rejects (so no weights exist for it).

:func:`official_flow` runs the official test-time path: input ``cat(disks_s, disks_t)``
(18 binary keypoint disks per person, radius :data:`DISK_RADIUS`), eval mode, then
``vis = argmax(logits)`` ∈ {0 visible, 1 invisible, 2 background} and
``flow = 20 · flow_out · (vis < 2)``: a backward flow in pixels, channel 0 = x.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.models.config import FLOW_NET_NORMS as NORMS
from spgnet.models.config import FlowNetConfig
from spgnet.pose import NUM_KEYPOINTS, keypoint_disks
from spgnet.utils.io import read_json
from spgnet.utils.weights import load_release_state_dict

DISK_RADIUS: dict[str, int] = {"deepfashion": 8, "market": 4}  # px, the official test options
FLOW_SCALE = 20.0  # the network predicts flow / 20
UPSAMPLE = 2  # the official forward's (fixed) output upsampling factor
TRAIN_OPT_KEYS: tuple[str, ...] = ("which_model", "input_type1", "input_type2", "joint_nc",
                                   "nf", "start_scale", "num_scale", "norm")


def _int_option(path, opt: Mapping, key: str, minimum: int) -> int:
    value = opt[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SPGNetError(f"{path}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def read_train_opt(path: str | os.PathLike) -> FlowNetConfig:
    """The :class:`FlowNetConfig` of an official ``train_opt.json`` (the flow network's
    training options, saved by its option parser).

    Keys read: ``which_model`` (must be ``unet``: ``unet_v2`` is another network),
    ``input_type1`` / ``input_type2`` (must both be ``joint``: the 18 keypoint disks of
    the source, then of the target) and ``joint_nc`` (18), ``nf``, ``start_scale`` (a
    power of 2), ``num_scale`` (>= 2), ``norm`` (``batch`` | ``instance``). Its ``max_nf``
    is not used: the release builds ``FlowUnet`` with its default 512. A missing key or a
    value the release cannot run raises SPGNetError naming the file and the key.
    """
    opt = read_json(path, "flow network options file (train_opt.json)")
    if not isinstance(opt, dict):
        raise SPGNetError(f"{path}: not a train_opt.json (expected a JSON object of options)")
    for key in TRAIN_OPT_KEYS:
        if key not in opt:
            raise SPGNetError(f"{path}: key {key!r} is missing (the flow network's options need it)")
    if opt["which_model"] != "unet":
        raise SPGNetError(f"{path}: which_model {opt['which_model']!r} is not supported (only 'unet', "
                          "the FlowUnet that the official SPGNet release loads)")
    joint_nc = _int_option(path, opt, "joint_nc", 1)
    for key in ("input_type1", "input_type2"):
        if opt[key] != "joint":
            raise SPGNetError(f"{path}: {key} {opt[key]!r} is not supported (only 'joint': the flow network "
                              "reads the keypoint disks of each person)")
    if joint_nc != NUM_KEYPOINTS:
        raise SPGNetError(f"{path}: joint_nc must be {NUM_KEYPOINTS} (COCO-18 keypoints), got {joint_nc}")
    nf = _int_option(path, opt, "nf", 1)
    start_scale = _int_option(path, opt, "start_scale", 1)
    if start_scale & (start_scale - 1):
        raise SPGNetError(f"{path}: start_scale must be a power of 2 (1, 2, 4, ...), got {start_scale}")
    num_scale = _int_option(path, opt, "num_scale", 2)
    norm = opt["norm"]
    if norm not in NORMS:
        raise SPGNetError(f"{path}: norm {norm!r} is not supported (the official FlowUnet accepts "
                          f"{' or '.join(repr(n) for n in NORMS)}; it raises NotImplementedError otherwise)")
    return FlowNetConfig(input_nc=2 * joint_nc, nf=nf, start_scale=start_scale, num_scale=num_scale, norm=norm)


def _norm(kind: str, channels: int) -> nn.Module:
    # Default arguments as the official: BatchNorm2d(eps=1e-5, momentum=0.1, affine, running
    # stats), InstanceNorm2d(eps=1e-5, no affine, no running stats).
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)


class FlowLevel(nn.Module):
    """One U-Net level (official ``FlowUnetSkipConnectionBlock``); ``submodule`` is the next
    level inwards (None at the innermost). Module indices follow the official lists, so
    the state-dict names match: ``down.{0|1}`` conv, ``up.1`` transposed conv, ``up.2``
    norm, ``predict_flow.1`` conv."""

    def __init__(self, outer: int, inner: int, submodule: FlowLevel | None, outermost: bool,
                 innermost: bool, norm: str):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        bias = norm == "instance"
        down_conv = nn.Conv2d(outer, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            down = [down_conv, _norm(norm, inner)]
        elif innermost:
            down = [nn.LeakyReLU(0.2), down_conv]
        else:
            down = [nn.LeakyReLU(0.2), down_conv, _norm(norm, inner)]
        up_conv = nn.ConvTranspose2d(inner if innermost else 2 * inner, outer, 4, stride=2, padding=1,
                                     bias=bias or outermost)
        self.down = nn.Sequential(*down)
        self.up = nn.Sequential(nn.ReLU(), up_conv, _norm(norm, outer))
        self.submodule = submodule
        self.predict_flow = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv2d(outer, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, outer, h, w)`` -> ``(B, outer, h, w)`` at the outermost level, else
        ``(B, 2·outer, h, w)`` = cat(LeakyReLU(0.2)(x), up(…))."""
        if self.outermost:
            h = self.down(x)
        else:
            # The official LeakyReLU(0.2, inplace=True) overwrites x: the skip carries it too.
            x = self.down[0](x)
            h = self.down[1:](x)
        if self.submodule is not None:
            h = self.submodule(h)
        y = self.up(h)
        return y if self.outermost else torch.cat((x, y), dim=1)


class OfficialFlowNet(nn.Module):
    """The official ``FlowUnet`` (see the module docstring); ``forward(x)`` with
    ``x (B, input_nc, H, W)`` -> ``(flow_out (B, 2, H', W'), vis_logits (B, 3, H', W'))``,
    ``H' = 2·H/start_scale`` (= H for the released networks), before the official
    post-processing (:func:`official_flow`). H and W must be multiples of
    ``start_scale · 2**num_scale`` (64 for the released DeepFashion network)."""

    def __init__(self, cfg: FlowNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else FlowNetConfig()
        bias = cfg.norm == "instance"
        stem: list[nn.Module] = [nn.Conv2d(cfg.input_nc, cfg.nf, 7, padding=3, bias=bias), _norm(cfg.norm, cfg.nf),
                                 nn.LeakyReLU(0.1)]
        n = cfg.nf
        for _ in range(int(math.log2(cfg.start_scale))):
            stem += [nn.Conv2d(n, 2 * n, 3, stride=2, padding=1, bias=bias), _norm(cfg.norm, 2 * n),
                     nn.LeakyReLU(0.1)]
            n *= 2
        self.conv_downsample = nn.Sequential(*stem)
        level: FlowLevel | None = None
        for lev in reversed(range(cfg.num_scale)):  # innermost first: each wraps the previous
            outer, inner = cfg.level_channels(lev)
            level = FlowLevel(outer, inner, level, outermost=lev == 0, innermost=lev == cfg.num_scale - 1,
                              norm=cfg.norm)
        self.unet_block = level
        self.predict_vis = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv2d(min(cfg.max_nf, n), 3, 3, padding=1))

    def check_input(self, x: torch.Tensor) -> None:
        """SPGNetError unless ``x`` is ``(B, input_nc, H, W)`` with sizes the U-Net can halve
        ``num_scale`` times after the stem (the official network fails otherwise)."""
        cfg = self.cfg
        if x.ndim != 4 or x.shape[1] != cfg.input_nc:
            raise SPGNetError(f"flow network input: expected (B, {cfg.input_nc}, H, W), got {tuple(x.shape)}")
        multiple = cfg.start_scale * 2 ** cfg.num_scale
        for size in x.shape[-2:]:
            stem_size = size
            for _ in range(int(math.log2(cfg.start_scale))):
                stem_size = (stem_size + 1) // 2  # conv3×3 stride 2 padding 1
            if stem_size % 2 ** cfg.num_scale:
                raise SPGNetError(f"flow network input: size {tuple(x.shape[-2:])} does not fit {cfg.describe()}: "
                                  f"H and W must be multiples of {multiple}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        feat = self.unet_block(self.conv_downsample(x))  # (B, min(max_nf, c), H/s, W/s)
        flow = self.unet_block.predict_flow(feat)  # (B, 2, H/s, W/s)
        vis = self.predict_vis(feat)  # (B, 3, H/s, W/s)
        flow = F.interpolate(flow, scale_factor=UPSAMPLE, mode="bilinear", align_corners=False)
        vis = F.interpolate(vis, scale_factor=UPSAMPLE, mode="bilinear", align_corners=False)
        return flow, vis


def official_flow_inputs(src_kp, tgt_kp, size: tuple[int, int], radius: float) -> torch.Tensor:
    """``(B, 36, H, W)`` float32: cat(disks of ``src_kp``, disks of ``tgt_kp``), each 18
    binary disks (:func:`spgnet.pose.keypoint_disks`, 1 where ``(x−x0)² + (y−y0)² <= r²``
    with pixel centres at integer coordinates, zero for a missing joint). Keypoints
    ``(18, 2)`` or ``(B, 18, 2)`` (x, y), tensors or arrays, on the same device."""
    src = keypoint_disks(src_kp, size, radius)
    tgt = keypoint_disks(tgt_kp, size, radius)
    if src.shape[0] != tgt.shape[0]:
        raise SPGNetError(f"flow network inputs: {src.shape[0]} source but {tgt.shape[0]} target keypoint sets")
    return torch.cat((src, tgt.to(src.device)), dim=1)


def official_flow(net: OfficialFlowNet, src_kp, tgt_kp, size: tuple[int, int], radius: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The official test-time flow of ``(B, 18, 2)`` source / target keypoints at ``size``
    ``(H, W)``: ``(flow (B, 2, H, W) float32, backward, pixels, channel 0 = x;
    vis (B, 1, H, W) float32 in {0, 1, 2})``, ``vis = argmax(logits)`` and
    ``flow = 20 · flow_out · (vis < 2)``. Runs ``net`` without gradients in eval mode
    (BatchNorm running statistics, as the official release) and restores its mode."""
    device = next(net.parameters()).device
    x = official_flow_inputs(src_kp, tgt_kp, size, radius).to(device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            flow_out, logits = net(x)
    finally:
        net.train(was_training)
    if tuple(flow_out.shape[-2:]) != tuple(x.shape[-2:]):
        raise SPGNetError(f"flow network {net.cfg.describe()}: its output is {tuple(flow_out.shape[-2:])} for "
                          f"a {tuple(x.shape[-2:])} input (the official forward upsamples by 2 whatever "
                          "start_scale is, so only start_scale 2 gives flows at the image size)")
    vis = logits.argmax(dim=1, keepdim=True)  # (B, 1, H, W): 0 visible, 1 invisible, 2 background
    flow = flow_out.float() * FLOW_SCALE * (vis < 2)
    return flow, vis.float()


def load_official_flow_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an official ``best_net_netF.pth`` (a plain state dict, read with
    ``torch.load(weights_only=True)``; a safetensors copy is accepted too), on the CPU:
    a ``module.`` prefix (DataParallel) is removed, float16 / bfloat16 tensors become
    float32, and a BatchNorm without ``num_batches_tracked`` (files saved by torch 0.4.0,
    the version Intr-Flow used) gets it as 0, as torch itself does when loading such files.
    Check it against a config with :func:`check_official_flow_state`."""
    return load_release_state_dict(path, "state dict of the official flow network")


def official_flow_shapes(cfg: FlowNetConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the official ``FlowUnet`` state dict for ``cfg``
    (built on the meta device: no memory, no initialisation cost)."""
    with torch.device("meta"):
        net = OfficialFlowNet(cfg)
    return {name: tuple(t.shape) for name, t in net.state_dict().items()}


def check_official_flow_state(state: Mapping[str, torch.Tensor], cfg: FlowNetConfig,
                              source: str = "flow network weights") -> None:
    """SPGNetError (one line starting with ``source``, e.g. the file name) naming the first
    tensor that ``cfg``'s network lacks, or that ``state`` lacks, or whose shape differs."""
    expected = official_flow_shapes(cfg)
    for name, shape in expected.items():
        if name not in state:
            raise SPGNetError(f"{source}: missing tensor {name} (expected shape {shape}) for {cfg.describe()}")
    for name in state:
        if name not in expected:
            raise SPGNetError(f"{source}: unexpected tensor {name} (not in {cfg.describe()})")
    for name, shape in expected.items():
        got = tuple(state[name].shape)
        if got != shape:
            raise SPGNetError(f"{source}: tensor {name} has shape {got}, {cfg.describe()} expects {shape}")


def load_official_flow_net(weights: str | os.PathLike, train_opt: str | os.PathLike | None = None,
                           device: str | torch.device = "cpu") -> OfficialFlowNet:
    """An :class:`OfficialFlowNet` in eval mode with the official weights ``weights``
    (``best_net_netF.pth``) and the options ``train_opt`` (default: ``train_opt.json`` next
    to the weights)."""
    weights = Path(weights)
    cfg = read_train_opt(weights.parent / "train_opt.json" if train_opt is None else train_opt)
    state = load_official_flow_state(weights)
    check_official_flow_state(state, cfg, source=str(weights))
    net = OfficialFlowNet(cfg)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


__all__ = ["DISK_RADIUS", "FLOW_SCALE", "FlowLevel", "FlowNetConfig", "NORMS", "OfficialFlowNet",
           "check_official_flow_state", "load_official_flow_net", "load_official_flow_state",
           "official_flow", "official_flow_inputs", "official_flow_shapes", "read_train_opt"]
