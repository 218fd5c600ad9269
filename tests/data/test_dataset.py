"""PairDataset against files read independently: values, resize/crop/flip geometry, flow consistency."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spgnet import SPGNetError
from spgnet.config import DatasetConfig
from spgnet.data.corr import read_corr
from spgnet.data.dataset import PairDataset, complete_batch, make_loader

H, W = 128, 88
# OpenPose-18 left/right mirror permutation, written out by hand.
FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]
# joints -> (same-side CIHP limb labels, opposite-side labels)
SIDE_LABELS = {
    3: ({15}, {14}), 4: ({15}, {14}), 6: ({14}, {15}), 7: ({14}, {15}),
    9: ({17}, {16}), 10: ({17, 19}, {16, 18}), 12: ({16}, {17}), 13: ({16, 18}, {17, 19}),
}


@pytest.fixture(scope="module")
def synth_root(synthetic_dataset) -> Path:
    return synthetic_dataset(6, 4, (H, W), 0)


@pytest.fixture()
def root_copy(synth_root, writable_copy) -> Path:
    return writable_copy(synth_root)


def make_cfg(root: Path, **kw) -> DatasetConfig:
    kw.setdefault("load_size", [H, W])
    kw.setdefault("use_flow", True)
    return DatasetConfig(root=str(root), **kw)


# -- independent readers ----------------------------------------------------------------


def read_pairs(root: Path, split: str) -> list[tuple[str, str]]:
    lines = (root / f"pairs-{split}.csv").read_text().splitlines()
    assert lines[0].replace(" ", "") == "from,to"
    return [tuple(x.strip() for x in line.split(",")) for line in lines[1:] if line.strip()]


def read_keypoints(root: Path, split: str) -> dict[str, np.ndarray]:
    """PATN CSV -> {stem: (18, 2) (x, y)}, y-list first on disk."""
    out = {}
    for line in (root / f"annotation-{split}.csv").read_text().splitlines():
        name, ys, xs = line.split(":")
        if name.strip() == "name":
            continue
        out[os.path.splitext(name.strip())[0]] = np.stack([json.loads(xs), json.loads(ys)], -1).astype(np.float32)
    return out


def image_file(root: Path, split: str, name: str) -> Path:
    matches = [p for p in (root / split).iterdir() if p.stem == os.path.splitext(name)[0]]
    assert len(matches) == 1
    return matches[0]


def pil_image(root, split, name) -> np.ndarray:
    return np.asarray(Image.open(image_file(root, split, name)).convert("RGB"))


def pil_labels(root, name) -> np.ndarray:
    return np.asarray(Image.open(root / "parsing" / f"{os.path.splitext(name)[0]}.png"))


def nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source pixel of each output pixel for nearest resampling at pixel centres, in exact
    integer arithmetic: floor((i + 0.5) * n_in / n_out). (PIL's NEAREST rounds some exact
    ties the other way, e.g. 128 -> 96.)"""
    return (2 * np.arange(n_out) + 1) * n_in // (2 * n_out)


def to_unit(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def warp(src: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp (3,H,W) by flow (2,H,W) in pixels, align_corners=True normalisation."""
    h, w = src.shape[1:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack([2 * (xs + flow[0]) / (w - 1) - 1, 2 * (ys + flow[1]) / (h - 1) - 1], -1)
    return F.grid_sample(src[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def warp_error(*samples: dict) -> float:
    """Mean |warp(source, flow) - target| over the visible interior of the samples' targets.

    Interior = vis 0 on the pixel and its 8 neighbours: on a part's rim resampling mixes
    in the background (even the generator's own GT flow rendered at 64x44 scores 0.12
    with the rim, 0.05 without). For scale: a 10% flow scale error gives 0.085-0.15 here,
    zero flow ~0.6.
    """
    total, count = 0.0, 0
    for s in samples:
        visible = (s["vis"] == 0).float()[None]  # (1, 1, H, W)
        interior = (-F.max_pool2d(-visible, 3, 1, 1))[0, 0] > 0.5
        assert interior.sum() > 30
        diff = (warp(s["src_image"], s["flow"]) - s["tgt_image"]).abs().mean(0)
        total, count = total + float(diff[interior].sum()), count + int(interior.sum())
    return total / count


def set_joint(root: Path, split: str, stem: str, joint: int, x: int, y: int) -> None:
    path = root / f"annotation-{split}.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        name, ys, xs = line.split(":")
        if os.path.splitext(name.strip())[0] == stem:
            ys, xs = json.loads(ys), json.loads(xs)
            xs[joint], ys[joint] = x, y
            lines[i] = f"{name}: {json.dumps(ys)}: {json.dumps(xs)}"
    path.write_text("\n".join(lines) + "\n")


# -- tests ----------------------------------------------------------------------------------


def test_sample_matches_files_at_disk_size(synth_root):
    ds = PairDataset(make_cfg(synth_root, onehot_in_loader=True), "train")
    pairs = read_pairs(synth_root, "train")
    kps = read_keypoints(synth_root, "train")
    assert len(ds) == len(pairs) == 6
    for i in (0, 3):
        s = ds[i]
        a, b = pairs[i]
        assert (s["from_name"], s["to_name"]) == (a, b)
        assert s["pair_name"] == f"{os.path.splitext(a)[0]}___{os.path.splitext(b)[0]}"
        for side, name in (("src", a), ("tgt", b)):
            img = s[f"{side}_image"]
            assert img.shape == (3, H, W) and img.dtype == torch.float32
            assert torch.allclose(img, to_unit(pil_image(synth_root, "train", name)), atol=1e-6)
            kp = s[f"{side}_kp"]
            assert kp.shape == (18, 2) and kp.dtype == torch.float32
            np.testing.assert_array_equal(kp.numpy(), kps[os.path.splitext(name)[0]])
            labels = s[f"{side}_parsing"]
            assert labels.shape == (H, W) and labels.dtype == torch.int64
            np.testing.assert_array_equal(labels.numpy(), pil_labels(synth_root, name))
            onehot = s[f"{side}_parsing_onehot"]
            assert onehot.shape == (20, H, W) and onehot.dtype == torch.float32
            assert torch.equal(onehot.argmax(0), labels) and torch.all(onehot.sum(0) == 1)
            pose = s[f"{side}_pose"]
            assert pose.shape == (30, H, W) and pose.dtype == torch.float32
            for j in range(18):  # heat map j peaks at keypoint j; missing -> empty channel
                x, y = kps[os.path.splitext(name)[0]][j]
                if x < 0 or y < 0:
                    assert float(pose[j].abs().max()) == 0.0
                elif x < W and y < H:
                    assert divmod(int(pose[j].argmax()), W) == (int(y), int(x))
        flow, vis = read_corr(synth_root / "flow" / f"{s['pair_name']}.corr")
        assert s["flow"].shape == (2, H, W) and s["vis"].shape == (1, H, W)
        np.testing.assert_array_equal(s["flow"].numpy(), flow)
        np.testing.assert_array_equal(s["vis"][0].numpy(), vis)


def test_gt_flow_reproduces_target_and_zero_flow_does_not(synth_root):
    ds = PairDataset(make_cfg(synth_root), "train")
    samples = [ds[i] for i in range(3)]
    assert warp_error(*samples) < 0.06
    assert warp_error(*[dict(s, flow=s["flow"] * 1.1) for s in samples]) > 0.06  # the criterion can fail
    assert warp_error(*[dict(s, flow=torch.zeros_like(s["flow"])) for s in samples]) > 0.3


def test_resize_keypoints_hand_computed(root_copy):
    pairs = read_pairs(root_copy, "train")
    stem = os.path.splitext(pairs[0][0])[0]
    set_joint(root_copy, "train", stem, 0, x=10, y=20)
    set_joint(root_copy, "train", stem, 1, x=-1, y=-1)
    s = PairDataset(make_cfg(root_copy, load_size=[64, 66]), "train")[0]  # sy = 0.5, sx = 0.75
    assert s["src_kp"][0].tolist() == [7.375, 9.75]  # (10.5 * 0.75 - 0.5, 20.5 * 0.5 - 0.5)
    assert s["src_kp"][1].tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("load_size", [(64, 44), (96, 66), (64, 66), (192, 132)])
def test_resize_is_consistent(synth_root, load_size):
    lh, lw = load_size
    ds = PairDataset(make_cfg(synth_root, load_size=list(load_size)), "train")
    pairs = read_pairs(synth_root, "train")
    kps = read_keypoints(synth_root, "train")
    samples = []
    for i in range(3):
        s = ds[i]
        a = pairs[i][0]
        assert s["src_image"].shape == (3, lh, lw) and s["src_pose"].shape == (30, lh, lw)
        assert s["flow"].shape == (2, lh, lw) and s["vis"].shape == (1, lh, lw)
        # keypoints: pixel centres map to pixel centres
        kp = kps[os.path.splitext(a)[0]]
        present = (kp >= 0).all(1)
        expect = (kp + 0.5) * np.array([lw / W, lh / H], np.float32) - 0.5
        np.testing.assert_allclose(s["src_kp"].numpy()[present], expect[present], atol=1e-5)
        assert (s["src_kp"].numpy()[~present] == -1).all()
        # parsing: nearest at pixel centres; no new labels
        labels = pil_labels(synth_root, a)
        rows, cols = nearest_index(lh, H), nearest_index(lw, W)
        np.testing.assert_array_equal(s["src_parsing"].numpy(), labels[rows][:, cols])
        assert set(np.unique(s["src_parsing"].numpy())) <= set(np.unique(labels))
        # image: close to PIL's (antialiased) bilinear resize
        ref_img = to_unit(np.asarray(Image.fromarray(pil_image(synth_root, "train", a)).resize((lw, lh), Image.BILINEAR)))
        assert float((s["src_image"] - ref_img).abs().mean()) < 0.01
        # flow: displacement resampled nearest like the parsing, then scaled by the size ratio
        flow, vis = read_corr(synth_root / "flow" / f"{s['pair_name']}.corr")
        for c, scale in ((0, lw / W), (1, lh / H)):
            np.testing.assert_allclose(s["flow"][c].numpy(), flow[c][rows][:, cols] * scale, atol=1e-4)
        np.testing.assert_array_equal(s["vis"][0].numpy(), vis[rows][:, cols])
        samples.append(s)
    assert warp_error(*samples) < 0.06


def test_crop_then_resize(root_copy):
    top, left, ch, cw = 8, 4, 112, 80
    pairs = read_pairs(root_copy, "train")
    stem = os.path.splitext(pairs[0][0])[0]
    set_joint(root_copy, "train", stem, 0, x=2, y=50)  # left of the crop -> missing
    set_joint(root_copy, "train", stem, 1, x=30, y=60)
    kps = read_keypoints(root_copy, "train")
    ds = PairDataset(make_cfg(root_copy, crop=[top, left, ch, cw], load_size=[ch, cw]), "train")
    s = ds[0]
    img = pil_image(root_copy, "train", pairs[0][0])[top : top + ch, left : left + cw]
    assert torch.allclose(s["src_image"], to_unit(img), atol=1e-6)
    np.testing.assert_array_equal(s["src_parsing"].numpy(), pil_labels(root_copy, pairs[0][0])[top : top + ch, left : left + cw])
    assert s["src_kp"][0].tolist() == [-1.0, -1.0]
    assert s["src_kp"][1].tolist() == [26.0, 52.0]
    kp = kps[stem]
    inside = (kp >= 0).all(1) & (kp[:, 0] >= left) & (kp[:, 0] < left + cw) & (kp[:, 1] >= top) & (kp[:, 1] < top + ch)
    np.testing.assert_array_equal(s["src_kp"].numpy()[inside], kp[inside] - [left, top])
    assert (s["src_kp"].numpy()[~inside] == -1).all()
    assert warp_error(s) < 0.06
    # crop followed by a 2x downscale
    ds2 = PairDataset(make_cfg(root_copy, crop=[top, left, ch, cw], load_size=[ch // 2, cw // 2]), "train")
    s2 = ds2[0]
    assert s2["src_image"].shape == (3, ch // 2, cw // 2)
    assert s2["src_kp"][0].tolist() == [-1.0, -1.0]
    assert s2["src_kp"][1].tolist() == [12.75, 25.75]  # ((30 - 4 + 0.5) / 2 - 0.5, (60 - 8 + 0.5) / 2 - 0.5)
    assert warp_error(*(ds2[i] for i in range(3))) < 0.06


def side_score(sample: dict, side: str) -> int:
    """(# limb joints on their own side's label) - (# on the other side's label)."""
    kp, labels = sample[f"{side}_kp"].long(), sample[f"{side}_parsing"]
    score = 0
    for j, (same, other) in SIDE_LABELS.items():
        x, y = kp[j].tolist()
        if x < 0 or y < 0:
            continue
        lab = int(labels[y, x])
        score += (lab in same) - (lab in other)
    return score


def test_hflip_is_consistent(synth_root):
    ds = PairDataset(make_cfg(synth_root, hflip=True), "train")
    assert ds.hflip
    total = 0
    for i in range(len(ds)):
        plain, flipped = ds.get(i, flip=False), ds.get(i, flip=True)
        for side in ("src", "tgt"):
            assert torch.equal(flipped[f"{side}_image"], plain[f"{side}_image"].flip(-1))
            kp, kpf = plain[f"{side}_kp"].numpy(), flipped[f"{side}_kp"].numpy()
            for j in range(18):
                if (kp[j] < 0).any():
                    assert (kpf[FLIP_PERM[j]] == -1).all()
                else:
                    np.testing.assert_allclose(kpf[FLIP_PERM[j]], [W - 1 - kp[j, 0], kp[j, 1]])
            # the flipped keypoints sit on the flipped image's limbs of the right side
            assert side_score(flipped, side) == side_score(plain, side)
            total += side_score(plain, side)
        assert warp_error(flipped) < 0.06
    assert total > 10  # the side check had something to check


def test_test_split_never_flips(synth_root):
    ds = PairDataset(make_cfg(synth_root, hflip=True), "test")
    assert not ds.hflip
    ref = ds.get(0, flip=False)
    for _ in range(4):
        assert torch.equal(ds[0]["src_image"], ref["src_image"])


def test_pairs_without_extension(root_copy):
    pairs = read_pairs(root_copy, "train")
    (root_copy / "pairs-train.csv").write_text(
        "from,to\n" + "".join(f"{os.path.splitext(a)[0]},{os.path.splitext(b)[0]}\n" for a, b in pairs)
    )
    s = PairDataset(make_cfg(root_copy), "train")[2]
    assert torch.allclose(s["tgt_image"], to_unit(pil_image(root_copy, "train", pairs[2][1])), atol=1e-6)
    assert s["pair_name"] == f"{os.path.splitext(pairs[2][0])[0]}___{os.path.splitext(pairs[2][1])[0]}"


def test_pair_with_unknown_image_names_file_and_line(root_copy):
    path = root_copy / "pairs-train.csv"
    n_lines = len(path.read_text().splitlines())
    with open(path, "a") as f:
        f.write(f"ghost.jpg,{read_pairs(root_copy, 'train')[0][0]}\n")
    with pytest.raises(SPGNetError, match=rf"pairs-train\.csv line {n_lines + 1}: 'ghost\.jpg' has no row"):
        PairDataset(make_cfg(root_copy), "train")


def test_load_errors_name_the_file(root_copy):
    a, b = read_pairs(root_copy, "train")[0]
    parsing = root_copy / "parsing" / f"{os.path.splitext(b)[0]}.png"
    parsing.unlink()
    ds = PairDataset(make_cfg(root_copy), "train")
    with pytest.raises(SPGNetError, match=re.escape(f"{parsing}: parsing file not found")):
        ds[0]
    image = image_file(root_copy, "train", a)
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(SPGNetError, match=re.escape(f"{image}: cannot decode image")):
        ds[0]


def test_loader_collates_and_device_maps_match_loader_maps(synth_root):
    full_cfg = make_cfg(synth_root, onehot_in_loader=True)
    full = next(iter(make_loader(full_cfg, "train", batch_size=3, shuffle=False, workers=0)))
    lean_cfg = make_cfg(synth_root, pose_in_loader=False, onehot_in_loader=False)
    lean = next(iter(make_loader(lean_cfg, "train", batch_size=3, shuffle=False, workers=2)))
    assert "src_pose" not in lean and "tgt_parsing_onehot" not in lean
    assert full["src_image"].shape == (3, 3, H, W) and full["tgt_pose"].shape == (3, 30, H, W)
    assert full["flow"].shape == (3, 2, H, W) and len(full["pair_name"]) == 3
    done = complete_batch(lean, lean_cfg, "cpu")
    for key in ("src_pose", "tgt_pose", "src_parsing_onehot", "tgt_parsing_onehot", "src_image", "tgt_kp"):
        assert torch.equal(done[key], full[key]), key


def test_distributed_loader_uses_distributed_sampler(synth_root, tmp_path):
    import torch.distributed as dist
    from torch.utils.data.distributed import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = make_loader(make_cfg(synth_root), "train", batch_size=2, shuffle=True, workers=0, distributed=True)
        assert isinstance(loader.sampler, DistributedSampler)
        loader.sampler.set_epoch(1)
        names = [n for batch in loader for n in batch["pair_name"]]
        assert len(names) == 6 and len(set(names)) == 6
    finally:
        dist.destroy_process_group()
