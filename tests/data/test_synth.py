"""Synthetic people (docs/design.md §5): layout, determinism, labels, keypoints, ground-truth flow, CLI, contact sheet.

Files are read back with independent readers (PIL, json, raw bytes of the .corr layout)
and the flow is checked by warping with ``grid_sample`` and by a brute-force search of
the source's (part, u, v) buffer.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spgnet.cli import main
from spgnet.data.corr import read_corr, write_corr
from spgnet.data.synth import (
    ground_truth_flow, render_person, sample_identity, sample_pose, write_synthetic_dataset,
)
from spgnet.apps.sheet import make_contact_sheet

H, W = 128, 88
VALID_LABELS = {0, 2, 5, 9, 12, 13, 14, 15, 16, 17, 18, 19}
NAME_RE = re.compile(r"^id(\d{5})_pose(\d{2})\.png$")
FACE = [0, 14, 15, 16, 17]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, 9, 6, size=(H, W), seed=0, progress=False)
    return root


# -- independent readers -----------------------------------------------------------------


def read_pairs(root: Path, split: str) -> list[tuple[str, str]]:
    lines = (root / f"pairs-{split}.csv").read_text().splitlines()
    assert lines[0] == "from,to"
    return [tuple(line.split(",")) for line in lines[1:]]


def read_annotations(root: Path, split: str) -> dict[str, np.ndarray]:
    """{name: (18, 2) (x, y)} from the PATN CSV (y list first)."""
    lines = (root / f"annotation-{split}.csv").read_text().splitlines()
    assert lines[0] == "name:keypoints_y:keypoints_x"
    out = {}
    for line in lines[1:]:
        name, ys, xs = line.split(":")
        out[name.strip()] = np.stack([json.loads(xs), json.loads(ys)], axis=1).astype(np.float64)
    return out


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.format == "PNG"
        return np.asarray(im)


def labels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


def raw_corr(path: Path) -> tuple[int, int, np.ndarray, np.ndarray]:
    data = path.read_bytes()
    w, h = struct.unpack("<ii", data[:8])
    coords = np.frombuffer(data[8:8 + h * w * 8], "<f4").reshape(h, w, 2)
    vis = np.frombuffer(data[8 + h * w * 8:], np.uint8).reshape(h, w)
    return w, h, coords, vis


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp (H, W, 3) uint8 by (2, H, W) flow: bilinear, align_corners=True -> [0, 1]."""
    h, w = flow.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([2 * (xs + flow[0]) / (w - 1) - 1, 2 * (ys + flow[1]) / (h - 1) - 1], axis=-1)
    src = torch.tensor(image).permute(2, 0, 1)[None].float() / 255
    out = F.grid_sample(src, torch.from_numpy(grid)[None], mode="bilinear", align_corners=True)
    return out[0].permute(1, 2, 0).numpy()


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pose_of(seed, view=None, zoom=False):
    return sample_pose(np.random.default_rng(seed), view=view, zoom=zoom)


# -- layout --------------------------------------------------------------------------------


def test_layout_is_complete_and_consistent(root):
    assert sorted(p.name for p in root.iterdir()) == sorted([
        "train", "test", "parsing", "flow", "annotation-train.csv", "annotation-test.csv",
        "pairs-train.csv", "pairs-test.csv", "synth.json"])
    identities = {}
    for split, n_pairs in (("train", 9), ("test", 6)):
        pairs = read_pairs(root, split)
        assert len(pairs) == n_pairs
        annotations = read_annotations(root, split)
        files = sorted(p.name for p in (root / split).iterdir())
        assert files == sorted(annotations)  # a CSV row for every image, an image for every row
        assert {n for pair in pairs for n in pair} == set(files)  # every image is used
        for a, b in pairs:
            ma, mb = NAME_RE.match(a), NAME_RE.match(b)
            assert ma and mb and ma.group(1) == mb.group(1) and a != b  # one identity, two poses
            assert (root / "flow" / f"{a[:-4]}___{b[:-4]}.corr").is_file()
        for name in files:
            assert rgb(root / split / name).shape == (H, W, 3)
            assert labels(root / "parsing" / name).shape == (H, W)
        identities[split] = {NAME_RE.match(n).group(1) for n in files}
    assert identities["train"] and identities["test"]
    assert not identities["train"] & identities["test"]
    assert len(list((root / "parsing").iterdir())) == 9 + 6
    assert len(list((root / "flow").iterdir())) == 9 + 6


def test_same_seed_same_bytes_any_worker_count_other_seed_differs(tmp_path):
    kw = dict(size=(64, 44), progress=False)
    write_synthetic_dataset(tmp_path / "a", 4, 2, seed=5, workers=1, **kw)
    write_synthetic_dataset(tmp_path / "b", 4, 2, seed=5, workers=2, **kw)
    write_synthetic_dataset(tmp_path / "c", 4, 2, seed=6, **kw)
    a, b, c = (all_files(tmp_path / d) for d in "abc")
    assert a == b
    assert sorted(a) == sorted(c)
    images = [k for k in a if k.startswith("train/")]
    assert all(a[k] != c[k] for k in images)


# -- labels and keypoints ------------------------------------------------------------------


def test_parsing_labels_valid_and_person_present(root):
    seen = set()
    for path in (root / "parsing").iterdir():
        lab = labels(path)
        seen |= set(np.unique(lab).tolist())
        assert set(np.unique(lab).tolist()) <= VALID_LABELS
        assert (lab > 0).mean() > 0.05
        assert {5}.issubset(np.unique(lab)) and (lab == 0).any()
    assert {2, 5, 13, 18, 19} <= seen  # hair, upper clothes, face, both shoes somewhere in the set


def test_keypoints_lie_on_the_person_and_sides_are_right(root):
    opposite = same = 0
    present_total = joints_total = 0
    for split in ("train", "test"):
        for name, kp in read_annotations(root, split).items():
            lab = labels(root / "parsing" / name)
            present = (kp >= 0).all(1)
            present_total += present.sum()
            joints_total += 18
            assert (kp[present, 0] <= W - 1).all() and (kp[present, 1] <= H - 1).all()
            assert present[1], name  # the neck is always in the frame
            x, y = kp[present].astype(int).T
            assert (lab[y, x] > 0).all(), name  # every joint on a body pixel
            face = present[FACE]
            assert face.all() or not face.any(), name  # front view: all face joints, back view: none
            # person's right shoulder (2) is on the image left in a front view, right in a back view
            assert (kp[2, 0] < kp[5, 0]) == face.any(), name
            for j, mine, theirs in ((3, 15, 14), (4, 15, 14), (6, 14, 15), (7, 14, 15),
                                    (9, 17, 16), (12, 16, 17), (10, 19, 18), (13, 18, 19)):
                if present[j]:
                    value = lab[int(kp[j, 1]), int(kp[j, 0])]
                    same += value == mine
                    opposite += value == theirs
    assert present_total / joints_total > 0.8
    assert same > 5 * max(opposite, 1)


def test_back_view_has_no_face_and_front_view_has_one():
    ident = sample_identity(np.random.default_rng(3))
    back = render_person(ident, pose_of(4, view="back"), (H, W))
    front = render_person(ident, pose_of(4, view="front"), (H, W))
    assert (back["keypoints"][FACE] == -1).all()
    assert (front["keypoints"][FACE] >= 0).all()
    head = back["part"] == 2
    assert head.any() and (back["parsing"][head] == 2).all()  # the back of the head is hair
    assert (front["parsing"][front["part"] == 2] == 13).any()


def test_a_dress_is_the_skirt_in_the_tops_cloth_labelled_dress_throughout():
    """``sample_identity(rng, dress=True)``: whoever would wear a skirt wears a dress, from
    the same draws. The same person is drawn, the skirt in the top's cloth, and every pixel
    of the garment (top, sleeves, skirt: upper-clothes 5 or skirt 12 before) is dress 6."""
    seed = [3, 0]  # a person in a skirt
    plain, dressed = (sample_identity(np.random.default_rng(seed), dress=d) for d in (False, True))
    assert plain.bottom == "skirt" and dressed.bottom == "dress"
    pose = pose_of(2, view="front")
    a, b = render_person(plain, pose, (H, W)), render_person(dressed, pose, (H, W))
    assert (a["part"] == b["part"]).all() and (a["keypoints"] == b["keypoints"]).all()
    garment = np.isin(a["parsing"], (5, 12))
    assert garment.any() and (a["parsing"] == 12).any()
    assert (b["parsing"][garment] == 6).all() and (b["parsing"][~garment] == a["parsing"][~garment]).all()
    skirt = a["parsing"] == 12  # the skirt's pixels change colour, nothing else does
    assert (a["image"][~skirt] == b["image"][~skirt]).all() and (a["image"][skirt] != b["image"][skirt]).any()
    other = sample_identity(np.random.default_rng([3, 1]), dress=True)  # not in a skirt: no dress
    assert other.bottom == sample_identity(np.random.default_rng([3, 1])).bottom != "dress"


def test_zoomed_view_drops_off_image_joints():
    ident = sample_identity(np.random.default_rng(8))
    r = render_person(ident, pose_of(9, zoom=True), (H, W))
    kp = r["keypoints"]
    assert (kp[[10, 13]] == -1).all()  # ankles below the frame
    assert (kp[1] >= 0).all()


# -- ground-truth flow -----------------------------------------------------------------------


def test_gt_flow_reproduces_target_zero_flow_does_not(root):
    for split in ("train", "test"):
        for a, b in read_pairs(root, split):
            flow, vis = read_corr(root / "flow" / f"{a[:-4]}___{b[:-4]}.corr")
            src, tgt = rgb(root / split / a), rgb(root / split / b)
            visible = vis == 0
            assert visible.sum() > 100, (a, b)
            target = tgt.astype(np.float32) / 255
            err = np.abs(warp(src, flow) - target).mean(-1)[visible].mean()
            zero = np.abs(warp(src, np.zeros_like(flow)) - target).mean(-1)[visible].mean()
            assert err < 0.05, (a, b, err)
            assert zero > 3 * err, (a, b, err, zero)


def test_visibility_matches_parsing_and_labels_carry_over(root):
    agree = total = 0
    for split in ("train", "test"):
        for a, b in read_pairs(root, split):
            w, h, coords, vis = raw_corr(root / "flow" / f"{a[:-4]}___{b[:-4]}.corr")
            assert (w, h) == (W, H)
            assert set(np.unique(vis).tolist()) <= {0, 1, 2}
            src_lab, tgt_lab = labels(root / "parsing" / a), labels(root / "parsing" / b)
            np.testing.assert_array_equal(vis == 2, tgt_lab == 0)
            # nearest source pixel of a visible target pixel carries the same label
            ys, xs = np.nonzero(vis == 0)
            sx = np.rint(coords[ys, xs, 0]).astype(int)
            sy = np.rint(coords[ys, xs, 1]).astype(int)
            assert ((sx >= 0) & (sx < W) & (sy >= 0) & (sy < H)).all()
            agree += (src_lab[sy, sx] == tgt_lab[ys, xs]).sum()
            total += len(ys)
    assert agree / total > 0.97


@pytest.mark.parametrize("views", [("front", "front"), ("back", "front")])
def test_gt_flow_matches_brute_force_search(views):
    ident = sample_identity(np.random.default_rng(21))
    src = render_person(ident, pose_of(22, view=views[0]), (H, W))
    tgt = render_person(ident, pose_of(23, view=views[1]), (H, W))
    flow, vis = ground_truth_flow(src, tgt)
    ys, xs = np.nonzero(vis == 0)
    assert len(ys) > 100
    pick = np.random.default_rng(0).choice(len(ys), 150, replace=False)
    for y, x in zip(ys[pick], xs[pick]):
        part = tgt["part"][y, x]
        sy, sx = np.nonzero(src["part"] == part)  # search the source for the same (part, u, v)
        d = np.hypot(src["u"][sy, sx] - tgt["u"][y, x], src["v"][sy, sx] - tgt["v"][y, x])
        near = np.argsort(d)[:12]
        assert len(near) >= 6 and d[near[0]] < 2.0  # the point is drawn in the source
        # the source pixels around it give (u, v) -> (x, y) by least squares; evaluate it at the target's (u, v)
        basis = np.stack([src["u"][sy, sx][near], src["v"][sy, sx][near], np.ones(len(near))], axis=1)
        fit, *_ = np.linalg.lstsq(basis, np.stack([sx[near], sy[near]], axis=1).astype(float), rcond=None)
        expect = np.array([tgt["u"][y, x], tgt["v"][y, x], 1.0]) @ fit
        np.testing.assert_allclose([x + flow[0, y, x], y + flow[1, y, x]], expect, atol=1e-3)
    # different surfaces of the head / torso are invisible across views, thin limbs are not
    if views[0] != views[1]:
        assert (vis[np.isin(tgt["part"], [2, 3, 4, 5])] == 1).all()


def test_corr_round_trip_of_gt_flow(tmp_path):
    ident = sample_identity(np.random.default_rng(30))
    src = render_person(ident, pose_of(31), (H, W))
    tgt = render_person(ident, pose_of(32), (H, W))
    flow, vis = ground_truth_flow(src, tgt)
    write_corr(tmp_path / "a___b.corr", flow, vis)
    w, h, coords, vis_raw = raw_corr(tmp_path / "a___b.corr")
    assert (w, h) == (W, H)
    ys, xs = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(coords[..., 0], xs + flow[0], atol=1e-4)
    np.testing.assert_allclose(coords[..., 1], ys + flow[1], atol=1e-4)
    np.testing.assert_array_equal(vis_raw, vis)
    flow2, vis2 = read_corr(tmp_path / "a___b.corr")
    np.testing.assert_allclose(flow2, flow, atol=1e-4)
    np.testing.assert_array_equal(vis2, vis)


# -- CLI and contact sheet ---------------------------------------------------------------------


def test_cli_writes_a_set_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "set"
    args = ["synth", "--out", str(out), "--pairs", "4", "--test-pairs", "2", "--size", "64x48", "--quiet"]
    assert main(args) == 0
    assert len(read_pairs(out, "train")) == 4 and len(read_pairs(out, "test")) == 2
    assert rgb(out / "train" / read_pairs(out, "train")[0][0]).shape == (64, 48, 3)
    # rerun into its own output with fewer pairs: allowed, and no stale files survive
    assert main([*args[:4], "2", *args[5:]]) == 0
    assert len(list((out / "flow").iterdir())) == 2 + 2
    capsys.readouterr()
    assert main(["synth", "--out", str(tmp_path / "x"), "--pairs", "2", "--size", "256by176"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--size" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(other), "--pairs", "2", "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["synth", "--out", str(other), "--pairs", "2", "--size", "32x32", "--force", "--quiet"]) == 0
    assert (other / "notes.txt").read_text() == "mine"


def test_contact_sheet_dimensions_and_cells(root, tmp_path):
    out = tmp_path / "sheet.png"
    sheet = make_contact_sheet(root, "test", 2, out)
    with Image.open(out) as im:
        assert im.size == (6 * W + 7 * 4, 16 + 2 * H + 3 * 4)  # 6 cells + gaps of 4, a 16 px title strip
    np.testing.assert_array_equal(np.asarray(Image.open(out)), sheet)
    pairs = read_pairs(root, "test")
    top = 16 + 4 + (H + 4)  # second row
    np.testing.assert_array_equal(sheet[top:top + H, 4:4 + W], rgb(root / "test" / pairs[1][0]))
    np.testing.assert_array_equal(sheet[top:top + H, 4 + 3 * (W + 4):4 + 3 * (W + 4) + W], rgb(root / "test" / pairs[1][1]))
    strided = make_contact_sheet(root, "test", 2, tmp_path / "strided.png", stride=3)  # pairs 0 and 3
    np.testing.assert_array_equal(strided[top:top + H, 4:4 + W], rgb(root / "test" / pairs[3][0]))
    assert main(["sheet", str(root), "--pairs", "1", "--out", str(tmp_path / "s.png")]) == 0
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (6 * W + 7 * 4, 16 + H + 2 * 4)
