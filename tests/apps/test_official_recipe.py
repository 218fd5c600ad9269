"""The recipe of docs/official.md end to end, on an official-layout Market folder written
here (images, label/split.json, label/pose_label.pkl, per-pair seg/) and random weights
shaped exactly like the official files: import-official -> convert-official ->
generate --target-parsing provided -> evaluate."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spgnet.cli import main
from spgnet.data.layout import read_pairs_csv
from spgnet.pose import read_annotation_csv
from spgnet.utils.checkpoint import read_checkpoint_config

from helpers import FLOW, random_flow_state, random_official_state, train_opt, write_flow_dir

H, W = 128, 64  # Market-1501, the official Market generator's size

pytestmark = pytest.mark.usefixtures("one_thread")


def market_seg(labels: np.ndarray) -> np.ndarray:
    """A release-style per-pair Market map: 2H x 4W, the person at twice the size in columns W..3W."""
    out = np.zeros((2 * H, 4 * W), np.uint8)
    out[:, W:3 * W] = labels.repeat(2, 0).repeat(2, 1)
    return out


def test_recipe_from_official_folders_to_metrics(synthetic_dataset, tmp_path, capsys):
    ours = synthetic_dataset(2, 3, (H, W), 11)
    src = tmp_path / "datasets" / "market1501"
    for folder in ("img/train", "img/test", "label", "seg"):
        (src / folder).mkdir(parents=True)
    split, poses = {}, {}
    for name in ("train", "test"):
        split[name] = [[Path(a).stem, Path(b).stem] for _, a, b in read_pairs_csv(ours / f"pairs-{name}.csv")]
        for image, kp in read_annotation_csv(ours / f"annotation-{name}.csv").items():
            sid = Path(image).stem
            shutil.copy(ours / name / image, src / "img" / name / image)
            poses[sid] = kp.astype(np.float64)
            labels = np.asarray(Image.open(ours / "parsing" / f"{sid}.png"))
            Image.fromarray(market_seg(labels)).save(src / "seg" / f"{sid}___{sid}.png")
        for a, b in split[name]:  # the pair's target parsing: here its ground truth
            Image.fromarray(market_seg(np.asarray(Image.open(ours / "parsing" / f"{b}.png")))).save(
                src / "seg" / f"{a}___{b}.png")
    (src / "label" / "split.json").write_text(json.dumps(split))
    with open(src / "label" / "pose_label.pkl", "wb") as f:
        pickle.dump(poses, f, protocol=2)

    generator = tmp_path / "checkpoints" / "market" / "latest_net_netG.pth"
    generator.parent.mkdir(parents=True)
    torch.save(random_official_state("market", 3), generator)
    flow_dir = write_flow_dir(tmp_path / "checkpoints" / "FlowReg_market", random_flow_state(FLOW, 4), train_opt())

    data, ckpt, out = tmp_path / "data" / "official-market", tmp_path / "runs" / "official-market", tmp_path / "results"
    steps = [
        ["import-official", str(src), "--out", str(data)],
        ["convert-official", "--dataset", "market", "--generator", str(generator), "--flow-dir", str(flow_dir),
         "--data-root", str(data), "--out", str(ckpt)],
        ["generate", "--checkpoint", str(ckpt), "--split", "test", "--target-parsing", "provided", "--out", str(out),
         "--device", "cpu", "--workers", "0", "--seed", "0"],
    ]
    for argv in steps:
        assert main(argv) == 0, capsys.readouterr().err
    assert read_checkpoint_config(ckpt)["data"]["root"] == str(data)
    # docs/official.md: the converted checkpoint's config.json is the dataset config
    assert main(["evaluate", "--generated", str(out), "--dataset", str(ckpt / "config.json"), "--split", "test",
                 "--metrics", "ssim,mask_ssim,l1,psnr", "--device", "cpu", "--workers", "0", "--no-progress"]) == 0, \
        capsys.readouterr().err

    pairs = split["test"]
    for a, b in pairs:  # stage 2 used the imported per-pair target parsing (here the ground truth)
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{a}___{b}_parsing.png")),
                                      np.asarray(Image.open(ours / "parsing" / f"{b}.png")))
        with Image.open(out / f"{a}___{b}.png") as im:
            assert im.size == (W, H)
    result = json.loads((out / "eval" / "metrics.json").read_text())
    assert result["complete"] and result["counts"]["evaluated"] == len(pairs)
    assert -1.0 <= result["metrics"]["ssim"] <= 1.0 and result["metrics"]["l1"] > 0  # random weights: any image
