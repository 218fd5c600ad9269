"""Importing a tiny fake official-SPGNet-layout folder (split.json, protocol-2 pose pickle, seg/, img/img/)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spgnet import SPGNetError
from spgnet.cli import main
from spgnet.config import DatasetConfig
from spgnet.data.check import check_dataset
from spgnet.data.dataset import PairDataset
from spgnet.data.official import import_official, load_pose_labels, read_official_split

H, W = 64, 48
IDS = ["A_1", "A_2", "B_1", "B_2", "C_1", "C_2"]
SPLIT = {
    "train": [["A_1", "A_2"], ["A_2", "A_1"], ["B_1", "B_2"]],
    "test": [["C_1", "C_2"], ["C_1", "ghost"]],
    "val": [["A_1", "C_1"]],
}


def fake_keypoints(rng) -> np.ndarray:
    kp = np.stack([rng.integers(0, W, 18), rng.integers(0, H, 18)], -1).astype(np.float64)
    kp[rng.choice(18, 3, replace=False)] = -1
    return kp


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    src = tmp_path_factory.mktemp("official") / "deepfashion"
    rng = np.random.default_rng(0)
    (src / "label").mkdir(parents=True)
    (src / "img" / "img").mkdir(parents=True)
    (src / "seg").mkdir()
    (src / "label" / "split.json").write_text(json.dumps(SPLIT))
    (src / "pred_seg").mkdir()
    Image.fromarray(rng.integers(0, 20, (H, W), dtype=np.uint8)).save(src / "pred_seg" / "C_1___C_2.png")
    poses = {}
    for sid in IDS:
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(src / "img" / "img" / f"{sid}.jpg")
        if sid != "B_2":  # one image without parsing
            Image.fromarray(rng.integers(0, 20, (H, W), dtype=np.uint8)).save(src / "seg" / f"{sid}.png")
        poses[sid] = fake_keypoints(rng)
    stored = dict(poses)
    stored["A_2"] = poses["A_2"].tolist()  # plain lists occur too
    with open(src / "label" / "pose_label.pkl", "wb") as f:
        pickle.dump(stored, f, protocol=2)
    return src, poses


def read_csv_keypoints(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for line in path.read_text().splitlines():
        name, ys, xs = line.split(":")
        if name.strip() != "name":
            out[name.strip()] = np.stack([json.loads(xs), json.loads(ys)], -1).astype(np.float64)
    return out


def test_import_copies_and_converts(official, tmp_path):
    src, poses = official
    out = tmp_path / "ours"
    result = import_official(src, out)
    assert result.pairs == {"train": 3, "test": 1}
    assert len(result.dropped["test"]) == 1 and "ghost" in result.dropped["test"][0]
    assert result.missing_parsing == ["B_2"]
    assert (out / "pairs-train.csv").read_text() == "from,to\nA_1.jpg,A_2.jpg\nA_2.jpg,A_1.jpg\nB_1.jpg,B_2.jpg\n"
    assert (out / "pairs-test.csv").read_text() == "from,to\nC_1.jpg,C_2.jpg\n"
    for split, ids in (("train", ["A_1", "A_2", "B_1", "B_2"]), ("test", ["C_1", "C_2"])):
        kps = read_csv_keypoints(out / f"annotation-{split}.csv")
        assert sorted(kps) == [f"{i}.jpg" for i in ids]
        for sid in ids:
            np.testing.assert_array_equal(kps[f"{sid}.jpg"], poses[sid])
            assert (out / split / f"{sid}.jpg").read_bytes() == (src / "img" / "img" / f"{sid}.jpg").read_bytes()
            if sid != "B_2":
                np.testing.assert_array_equal(
                    np.asarray(Image.open(out / "parsing" / f"{sid}.png")), np.asarray(Image.open(src / "seg" / f"{sid}.png"))
                )
    report = check_dataset(DatasetConfig(root=str(out), image_size=[H, W]))
    assert report.counts() == {"missing parsing": 1}, report.format()
    sample = PairDataset(DatasetConfig(root=str(out), load_size=[H, W]), "test")[0]
    np.testing.assert_array_equal(sample["tgt_kp"].numpy(), poses["C_2"].astype(np.float32))
    # the official stage-1 prediction of the test pair's target parsing, per pair
    assert result.pair_parsing == 1 and result.missing_pair_parsing == {"train": 3, "test": 0}
    predicted = np.asarray(Image.open(src / "pred_seg" / "C_1___C_2.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "parsing-pred" / "C_1___C_2.png")), predicted)
    sample = PairDataset(DatasetConfig(root=str(out), load_size=[H, W]), "test", provided_parsing=True)[0]
    np.testing.assert_array_equal(sample["tgt_parsing_provided"].numpy(), predicted)
    assert not np.array_equal(sample["tgt_parsing"].numpy(), predicted)  # the ground truth is another map


def test_market_per_pair_parsing_is_cropped_and_resized_as_the_official_loader(tmp_path):
    """Market keeps every parsing per pair, 2H x 4W with the person in columns W..3W at twice
    the size; the official loader crops those columns and resizes with index floor(i * 2)."""
    h, w = 16, 8
    src = tmp_path / "market1501"
    rng = np.random.default_rng(1)
    for folder in ("label", "img/train", "img/test", "seg"):
        (src / folder).mkdir(parents=True)
    (src / "label" / "split.json").write_text(json.dumps({"train": [["a", "b"]], "test": [["c", "d"]]}))
    maps = {}
    for split, ids in (("train", "ab"), ("test", "cd")):
        for sid in ids:
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / "img" / split / f"{sid}.jpg")
    for pair in ("a___a", "b___b", "a___b", "c___c", "d___d", "c___d"):
        maps[pair] = rng.integers(0, 20, (2 * h, 4 * w), dtype=np.uint8)
        Image.fromarray(maps[pair]).save(src / "seg" / f"{pair}.png")
    with open(src / "label" / "pose_label.pkl", "wb") as f:
        pickle.dump({sid: np.full((18, 2), 2.0) for sid in "abcd"}, f, protocol=2)
    out = tmp_path / "ours"
    result = import_official(src, out)
    assert result.pairs == {"train": 1, "test": 1} and result.parsing == 4 and result.pair_parsing == 2

    def official_view(m):  # seg[:, 64:192] then INTER_NEAREST to (w, h), written out by hand
        crop = m[:, w:3 * w]
        return np.array([[crop[2 * i, 2 * j] for j in range(w)] for i in range(h)], dtype=np.uint8)

    for sid in "abcd":
        np.testing.assert_array_equal(np.asarray(Image.open(out / "parsing" / f"{sid}.png")),
                                      official_view(maps[f"{sid}___{sid}"]))
    for pair in ("a___b", "c___d"):
        np.testing.assert_array_equal(np.asarray(Image.open(out / "parsing-pred" / f"{pair}.png")),
                                      official_view(maps[pair]))


def test_import_cli_with_resize(official, tmp_path, capsys):
    src, poses = official
    out = tmp_path / "small"
    assert main(["import-official", str(src), "--out", str(out), "--size", f"{H // 2}x{W // 2}"]) == 0
    assert "train 3 pairs" in capsys.readouterr().out
    with Image.open(out / "train" / "A_1.jpg") as im:
        assert im.size == (W // 2, H // 2)
    labels = np.asarray(Image.open(src / "seg" / "A_1.png"))
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "parsing" / "A_1.png")),
        np.asarray(Image.fromarray(labels).resize((W // 2, H // 2), Image.NEAREST)),
    )
    kp = read_csv_keypoints(out / "annotation-train.csv")["B_1.jpg"]
    ref = poses["B_1"]
    present = (ref >= 0).all(1)
    expect = (ref + 0.5) * 0.5 - 0.5  # pixel centre to pixel centre; the CSV holds integers
    assert np.abs(kp[present] - expect[present]).max() <= 0.5
    assert (kp[~present] == -1).all()
    # a second import into the same folder needs --force
    assert main(["import-official", str(src), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_import_with_links(official, tmp_path):
    src, _ = official
    out = tmp_path / "linked"
    import_official(src, out, link=True)
    path = out / "train" / "A_1.jpg"
    assert path.is_symlink() and path.resolve() == (src / "img" / "img" / "A_1.jpg").resolve()


def test_python2_style_numpy_names_load(official, tmp_path):
    src, poses = official
    data = (src / "label" / "pose_label.pkl").read_bytes()
    py2 = tmp_path / "py2.pkl"  # Python 2 / numpy 1 pickles name numpy.core.multiarray
    py2.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = load_pose_labels(py2)
    assert loaded.keys() == poses.keys()
    for sid in IDS:
        np.testing.assert_array_equal(loaded[sid], poses[sid].astype(np.float32))


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "pose_label.pkl"
    path.write_bytes(pickle.dumps({"x": _Evil(str(marker))}, protocol=2))
    with pytest.raises(SPGNetError, match=r"pose_label\.pkl: cannot read pose labels \(refusing to load .*system"):
        load_pose_labels(path)
    assert not marker.exists()


def test_bad_split_json_names_file_and_entry(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": [["a", "b"], ["c"]]}))
    with pytest.raises(SPGNetError, match=r"split\.json: train\[1\] is \['c'\]"):
        read_official_split(path)
    path.write_text("{not json")
    with pytest.raises(SPGNetError, match=r"split\.json: invalid JSON"):
        read_official_split(path)
