"""The official release's flow network (``FlowUnet`` of Intr-Flow, docs/design.md §14):
parameter names and shapes against the official listing (tests/assets), the forward
against a functional computation written out from the structure description, the
official post-processing, the 36-channel keypoint-disk input, train_opt.json and the
weights file."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.models.official_flow import (DISK_RADIUS, FlowNetConfig, OfficialFlowNet, check_official_flow_state,
                                         load_official_flow_net, load_official_flow_state, official_flow,
                                         official_flow_inputs, read_train_opt)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def read_listing(nf: int) -> tuple[str, list[tuple[str, tuple[int, ...]]]]:
    lines = (ASSETS / f"official-flowunet-nf{nf}-params.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[1] == "name\tshape"
    rows = [line.split("\t") for line in lines[2:] if line]
    return lines[0], [(name, tuple(ast.literal_eval(shape))) for name, shape in rows]


@pytest.mark.parametrize("nf", [16, 32])
def test_names_and_shapes_equal_the_official_listing(nf):
    header, rows = read_listing(nf)
    assert f"nf={nf}, start_scale=2, num_scale=5, norm='batch'" in header
    with torch.device("meta"):
        net = OfficialFlowNet(FlowNetConfig(input_nc=36, nf=nf, start_scale=2, num_scale=5, norm="batch"))
    ours = [(name, tuple(t.shape)) for name, t in net.state_dict().items()]
    assert ours == rows
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == int(header.split(": ")[1].split()[0])


# --- forward against a functional computation of the structure ----------------------------------------


def randomize(net: nn.Module, seed: int) -> None:
    """Random weights and BatchNorm statistics (so that eval-mode BN is not the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                t.fill_(3)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)


def reference_forward(sd: dict[str, torch.Tensor], start_scale: int, num_scale: int, norm: str,
                      x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official forward from the structure description, with plain functional calls.

    Convs have a bias only with instance norm, except the outermost transposed conv and the
    two 3×3 heads; BatchNorm in eval mode (running statistics, eps 1e-5); InstanceNorm
    without affine. The official down-path LeakyReLU(0.2) runs in place, so a level's skip
    is the activated input.
    """
    has_bias = norm == "instance"

    def conv_bias(name: str, always: bool = False):
        return sd[name] if (has_bias or always) else None

    def normalize(h: torch.Tensor, prefix: str) -> torch.Tensor:
        if norm == "batch":
            return F.batch_norm(h, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"],
                                sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], training=False, eps=1e-5)
        return F.instance_norm(h, eps=1e-5)

    h = F.conv2d(x, sd["conv_downsample.0.weight"], conv_bias("conv_downsample.0.bias"), padding=3)
    h = F.leaky_relu(normalize(h, "conv_downsample.1"), 0.1)
    for i in range(int(math.log2(start_scale))):
        k = 3 + 3 * i
        h = F.conv2d(h, sd[f"conv_downsample.{k}.weight"], conv_bias(f"conv_downsample.{k}.bias"), stride=2, padding=1)
        h = F.leaky_relu(normalize(h, f"conv_downsample.{k + 1}"), 0.1)

    def level(lev: int, x: torch.Tensor) -> torch.Tensor:
        p = "unet_block." + "submodule." * lev
        outermost, innermost = lev == 0, lev == num_scale - 1
        if outermost:
            d = F.conv2d(x, sd[p + "down.0.weight"], conv_bias(p + "down.0.bias"), stride=2, padding=1)
            d = normalize(d, p + "down.1")
        else:
            x = F.leaky_relu(x, 0.2)
            d = F.conv2d(x, sd[p + "down.1.weight"], conv_bias(p + "down.1.bias"), stride=2, padding=1)
            if not innermost:
                d = normalize(d, p + "down.2")
        if not innermost:
            d = level(lev + 1, d)
        u = F.conv_transpose2d(F.relu(d), sd[p + "up.1.weight"], conv_bias(p + "up.1.bias", always=outermost),
                               stride=2, padding=1)
        u = normalize(u, p + "up.2")
        return u if outermost else torch.cat((x, u), dim=1)

    feat = level(0, h)
    flow = F.conv2d(F.leaky_relu(feat, 0.1), sd["unet_block.predict_flow.1.weight"],
                    sd["unet_block.predict_flow.1.bias"], padding=1)
    vis = F.conv2d(F.leaky_relu(feat, 0.1), sd["predict_vis.1.weight"], sd["predict_vis.1.bias"], padding=1)
    # the official forward upsamples by its stored start_scale, always 2
    up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
    return up(flow), up(vis)


@pytest.mark.parametrize("nf,start_scale,num_scale,norm,size", [
    (2, 2, 2, "batch", (8, 8)),
    (2, 1, 3, "instance", (8, 16)),
    (3, 4, 2, "batch", (16, 32)),
])
def test_forward_equals_the_functional_computation(nf, start_scale, num_scale, norm, size):
    cfg = FlowNetConfig(input_nc=36, nf=nf, start_scale=start_scale, num_scale=num_scale, norm=norm)
    net = OfficialFlowNet(cfg).eval()
    randomize(net, seed=nf + start_scale)
    x = (torch.rand(2, 36, *size, generator=torch.Generator().manual_seed(5)) > 0.7).float()
    sd = net.state_dict()
    with torch.no_grad():
        flow, vis = net(x)
        ref_flow, ref_vis = reference_forward(sd, start_scale, num_scale, norm, x)
    # output at 2·H/start_scale: the stored start_scale is 2 whatever the stem used
    out_size = tuple(2 * s // start_scale for s in size)
    assert flow.shape == (2, 2, *out_size) and vis.shape == (2, 3, *out_size)
    assert ref_flow.abs().max() > 0.1  # the check below is not vacuous
    torch.testing.assert_close(flow, ref_flow, atol=1e-5, rtol=0)
    torch.testing.assert_close(vis, ref_vis, atol=1e-5, rtol=0)


def test_skip_carries_the_activated_input():
    """Guard on the reference itself: with the raw input in the skips it would differ."""
    cfg = FlowNetConfig(input_nc=36, nf=2, start_scale=2, num_scale=2, norm="batch")
    net = OfficialFlowNet(cfg).eval()
    randomize(net, seed=1)
    x = (torch.rand(1, 36, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    block = net.unet_block.submodule
    seen = {}
    hook = block.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        net(x)
    hook.remove()
    channels = seen["x"].shape[1]
    torch.testing.assert_close(seen["out"][:, :channels], F.leaky_relu(seen["x"], 0.2), atol=0, rtol=0)
    assert (seen["x"] < 0).any()


def test_input_size_must_fit_the_unet():
    net = OfficialFlowNet(FlowNetConfig(nf=2, start_scale=2, num_scale=3))
    with pytest.raises(SPGNetError, match="multiples of 16"):
        net(torch.zeros(1, 36, 8, 16))
    with pytest.raises(SPGNetError, match=r"expected \(B, 36, H, W\)"):
        net(torch.zeros(1, 35, 16, 16))


@pytest.mark.parametrize("kwargs,key", [({"nf": 0}, "nf"), ({"start_scale": 3}, "start_scale"),
                                        ({"num_scale": 1}, "num_scale"), ({"norm": "none"}, "norm")])
def test_config_rejects_values_the_official_network_cannot_build(kwargs, key):
    with pytest.raises(SPGNetError, match=key):
        FlowNetConfig(**kwargs)


# --- inputs and post-processing --------------------------------------------------------------------------


def brute_force_disks(kp: np.ndarray, h: int, w: int, radius: float) -> np.ndarray:
    out = np.zeros((18, h, w), np.float32)
    for j, (x0, y0) in enumerate(kp):
        if x0 < 0 or y0 < 0:
            continue
        for y in range(h):
            for x in range(w):
                if (x - x0) ** 2 + (y - y0) ** 2 <= radius ** 2:
                    out[j, y, x] = 1.0
    return out


def known_keypoints(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.stack([rng.integers(0, w, 18), rng.integers(0, h, 18)], -1).astype(np.float32)
    kp[[3, 11]] = -1  # missing joints
    kp[5] = (0, h - 1)  # on the border: a clipped disk
    return kp


def test_inputs_are_source_then_target_disks():
    h, w, r = 16, 12, DISK_RADIUS["market"]
    src = np.stack([known_keypoints(1, h, w), known_keypoints(2, h, w)])
    tgt = np.stack([known_keypoints(3, h, w), known_keypoints(4, h, w)])
    x = official_flow_inputs(torch.from_numpy(src), torch.from_numpy(tgt), (h, w), r)
    assert x.shape == (2, 36, h, w) and x.dtype == torch.float32
    for b in range(2):
        np.testing.assert_array_equal(x[b, :18].numpy(), brute_force_disks(src[b], h, w, r))
        np.testing.assert_array_equal(x[b, 18:].numpy(), brute_force_disks(tgt[b], h, w, r))
    assert x[:, 3].sum() == 0 and x[:, 18 + 11].sum() == 0
    assert DISK_RADIUS == {"deepfashion": 8, "market": 4}


class FixedOutputs(nn.Module):
    """Stands for the flow network: returns given outputs, records its input and mode."""

    def __init__(self, flow_out: torch.Tensor, logits: torch.Tensor):
        super().__init__()
        self.cfg = FlowNetConfig()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.flow_out, self.logits = flow_out, logits
        self.calls = []

    def forward(self, x):
        self.calls.append((x.clone(), self.training, torch.is_grad_enabled()))
        return self.flow_out + 0 * self.dummy, self.logits


def test_post_processing_by_hand():
    h, w = 4, 3
    # visibility classes chosen by hand, logits = 2·one-hot + small noise
    vis_expected = torch.tensor([[0, 1, 2], [2, 2, 0], [1, 0, 0], [2, 1, 1]])
    logits = 2.0 * F.one_hot(vis_expected, 3).permute(2, 0, 1)[None].float()
    logits += 0.1 * torch.rand(logits.shape, generator=torch.Generator().manual_seed(0))
    flow_out = torch.randn(1, 2, h, w, generator=torch.Generator().manual_seed(1))
    net = FixedOutputs(flow_out, logits).train()
    src, tgt = known_keypoints(5, h, w), known_keypoints(6, h, w)
    flow, vis = official_flow(net, src, tgt, (h, w), radius=2)

    assert vis.shape == (1, 1, h, w) and vis.dtype == torch.float32
    assert torch.equal(vis[0, 0], vis_expected.float())
    assert flow.shape == (1, 2, h, w) and flow.dtype == torch.float32
    for y in range(h):
        for x in range(w):
            want = flow_out[0, :, y, x] * 20.0 if vis_expected[y, x] < 2 else torch.zeros(2)
            torch.testing.assert_close(flow[0, :, y, x], want, atol=1e-6, rtol=0)
    # the network saw cat(source disks, target disks), in eval mode, without gradients; mode restored
    (seen, training, grad), = net.calls
    expected = np.concatenate([brute_force_disks(src, h, w, 2), brute_force_disks(tgt, h, w, 2)])
    np.testing.assert_array_equal(seen[0].numpy(), expected)
    assert not training and not grad and net.training


def test_official_flow_with_a_tiny_network():
    net = OfficialFlowNet(FlowNetConfig(nf=2, start_scale=2, num_scale=2, norm="batch"))
    randomize(net, seed=3)
    h, w = 16, 8
    src = np.stack([known_keypoints(7, h, w)] * 2)
    tgt = np.stack([known_keypoints(8, h, w), known_keypoints(9, h, w)])
    flow, vis = official_flow(net, src, tgt, (h, w), DISK_RADIUS["market"])
    with torch.no_grad():
        flow_out, logits = net.eval()(official_flow_inputs(src, tgt, (h, w), 4))
    assert set(vis.unique().tolist()) <= {0.0, 1.0, 2.0}
    assert torch.equal(vis, logits.argmax(1, keepdim=True).float())
    torch.testing.assert_close(flow, torch.where(vis < 2, 20 * flow_out, torch.zeros(())), atol=1e-6, rtol=0)


def test_official_flow_refuses_outputs_off_the_image_size():
    net = OfficialFlowNet(FlowNetConfig(nf=2, start_scale=1, num_scale=2))
    kp = known_keypoints(0, 8, 8)
    with pytest.raises(SPGNetError, match="start_scale"):
        official_flow(net, kp, kp, (8, 8), 2)


# --- train_opt.json -----------------------------------------------------------------------------------


def train_opt(**changes) -> dict:
    """A train_opt.json as the official option parser writes it (a subset of its keys)."""
    opt = {"id": "FlowReg_deepfashion", "which_model": "unet", "init_type": "kaiming", "norm": "batch", "nf": 32,
           "max_nf": 128, "input_type1": "joint", "input_type2": "joint", "start_scale": 2, "num_scale": 5,
           "flow_loss_type": "l2", "use_ss_flow_loss": 1, "joint_nc": 18, "joint_mode": "binary",
           "joint_radius": 8, "seg_nc": 7, "dataset_name": "deepfashion", "image_size": [256, 256],
           "gpu_ids": [0], "is_train": True}
    opt.update(changes)
    return opt


def write_opt(tmp_path: Path, opt) -> Path:
    path = tmp_path / "train_opt.json"
    path.write_text(json.dumps(opt), encoding="utf-8")
    return path


def test_read_train_opt(tmp_path):
    cfg = read_train_opt(write_opt(tmp_path, train_opt()))
    assert cfg == FlowNetConfig(input_nc=36, nf=32, start_scale=2, num_scale=5, norm="batch", max_nf=512)
    market = read_train_opt(write_opt(tmp_path, train_opt(nf=16, num_scale=4, norm="instance", start_scale=4)))
    assert (market.nf, market.num_scale, market.norm, market.start_scale) == (16, 4, "instance", 4)
    assert read_train_opt(write_opt(tmp_path, train_opt(start_scale=1))).start_scale == 1


@pytest.mark.parametrize("key", ["nf", "start_scale", "num_scale", "norm", "which_model", "input_type1",
                                 "input_type2", "joint_nc"])
def test_read_train_opt_missing_key(tmp_path, key):
    opt = train_opt()
    del opt[key]
    path = write_opt(tmp_path, opt)
    with pytest.raises(SPGNetError) as err:
        read_train_opt(path)
    message = str(err.value)
    assert str(path) in message and repr(key) in message and "\n" not in message


@pytest.mark.parametrize("key,value", [
    ("nf", 0), ("nf", "32"), ("nf", True), ("nf", 16.5), ("start_scale", 3), ("start_scale", 0), ("num_scale", 1),
    ("norm", "none"), ("norm", "group"), ("which_model", "unet_v2"), ("input_type1", "joint+seg"),
    ("input_type2", "img"), ("joint_nc", 17),
])
def test_read_train_opt_bad_value(tmp_path, key, value):
    path = write_opt(tmp_path, train_opt(**{key: value}))
    with pytest.raises(SPGNetError) as err:
        read_train_opt(path)
    message = str(err.value)
    assert str(path) in message and key in message and "\n" not in message


def test_read_train_opt_bad_file(tmp_path):
    with pytest.raises(SPGNetError, match="not found"):
        read_train_opt(tmp_path / "nothing.json")
    with pytest.raises(SPGNetError, match="JSON object"):
        read_train_opt(write_opt(tmp_path, [1, 2]))


# --- weights file ---------------------------------------------------------------------------------------

TINY = FlowNetConfig(nf=2, start_scale=2, num_scale=2, norm="batch")


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    net = OfficialFlowNet(TINY)
    randomize(net, seed)
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_round_trip_through_a_pth(tmp_path):
    state = tiny_state(4)
    path = tmp_path / "best_net_netF.pth"
    torch.save(state, path)
    loaded = load_official_flow_state(path)
    check_official_flow_state(loaded, TINY, source=path.name)
    net = OfficialFlowNet(TINY)
    net.load_state_dict(loaded, strict=True)
    reference = OfficialFlowNet(TINY)
    reference.load_state_dict(state, strict=True)
    x = (torch.rand(2, 36, 16, 8, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    with torch.no_grad():
        a, b = net.eval()(x), reference.eval()(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].abs().max() > 0

    (tmp_path / "train_opt.json").write_text(json.dumps(train_opt(nf=2, num_scale=2)), encoding="utf-8")
    full = load_official_flow_net(path)
    assert not full.training and full.cfg == TINY
    with torch.no_grad():
        assert torch.equal(full(x)[0], a[0])


def test_module_prefix_and_half_precision(tmp_path):
    state = tiny_state(5)
    saved = {f"module.{k}": (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    path = tmp_path / "best_net_netF.pth"
    torch.save(saved, path)
    loaded = load_official_flow_state(path)
    assert list(loaded) == list(state)
    for name, value in loaded.items():
        assert value.dtype == state[name].dtype, name
        want = state[name].half().float() if state[name].is_floating_point() else state[name]
        assert torch.equal(value, want), name
    check_official_flow_state(loaded, TINY)


def test_missing_num_batches_tracked_is_filled(tmp_path):
    """Files written by torch 0.4.0 have no num_batches_tracked; torch fills it with 0 too."""
    state = {k: v for k, v in tiny_state().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "best_net_netF.pth"
    torch.save(state, path)
    loaded = load_official_flow_state(path)
    assert torch.equal(loaded["conv_downsample.1.num_batches_tracked"], torch.tensor(0))
    check_official_flow_state(loaded, TINY)


def one_line_error(state, source="best_net_netF.pth") -> str:
    with pytest.raises(SPGNetError) as err:
        check_official_flow_state(state, TINY, source=source)
    message = str(err.value)
    assert "\n" not in message and message.startswith(source + ": ")
    return message


def test_state_check_names_the_tensor():
    state = tiny_state()
    missing = dict(state)
    del missing["unet_block.predict_flow.1.weight"]
    assert "missing tensor unet_block.predict_flow.1.weight (expected shape (2, 4, 3, 3))" in one_line_error(missing)

    extra = dict(state, **{"unet_block.down.0.bias": torch.zeros(8)})
    assert "unexpected tensor unet_block.down.0.bias" in one_line_error(extra)

    shaped = dict(state, **{"predict_vis.1.weight": torch.zeros(3, 5, 3, 3)})
    message = one_line_error(shaped)
    assert "predict_vis.1.weight" in message and "(3, 5, 3, 3)" in message and "(3, 4, 3, 3)" in message

    check_official_flow_state(state, TINY)  # the complete state passes
