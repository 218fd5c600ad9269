"""``spgnet generate`` with the target parsing it is told to use: stage 1's prediction, a
provided one per pair (the official release's stage-1 predictions, brought in by
``import-official`` from an official-layout folder written here), or the ground truth;
and a generator-only checkpoint (as a converted official one), which needs a given parsing."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spgnet.cli import main
from spgnet.data.layout import read_pairs_csv
from spgnet.pose import read_annotation_csv
from spgnet.utils.checkpoint import read_checkpoint_config, read_model_state, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def imported(tiny_run, tmp_path_factory) -> dict:
    """The tiny dataset's test split written in the official layout (img/img, label/split.json,
    label/pose_label.pkl, seg/, pred_seg/), then imported with `spgnet import-official`.
    pred_seg/: the ground-truth target parsing for the first pair, random labels for the others."""
    root, base = tiny_run["root"], tmp_path_factory.mktemp("official-layout")
    src = base / "deepfashion"
    for folder in ("img/img", "label", "seg", "pred_seg"):
        (src / folder).mkdir(parents=True)
    pairs = [(Path(a).stem, Path(b).stem) for _, a, b in read_pairs_csv(root / "pairs-test.csv")]
    kps = {Path(name).stem: kp for name, kp in read_annotation_csv(root / "annotation-test.csv").items()}
    for sid in kps:
        shutil.copy(root / "test" / f"{sid}.png", src / "img" / "img" / f"{sid}.png")
        shutil.copy(root / "parsing" / f"{sid}.png", src / "seg" / f"{sid}.png")
    rng = np.random.default_rng(7)
    provided = {}
    for i, (a, b) in enumerate(pairs):
        gt = np.asarray(Image.open(root / "parsing" / f"{b}.png"))
        provided[f"{a}___{b}"] = gt if i == 0 else rng.integers(0, 20, gt.shape, dtype=np.uint8)
        Image.fromarray(provided[f"{a}___{b}"]).save(src / "pred_seg" / f"{a}___{b}.png")
    (src / "label" / "split.json").write_text(json.dumps({"train": [], "test": [list(p) for p in pairs]}))
    with open(src / "label" / "pose_label.pkl", "wb") as f:
        pickle.dump({sid: kp.astype(np.float64) for sid, kp in kps.items()}, f, protocol=2)
    out = base / "ours"
    assert main(["import-official", str(src), "--out", str(out)]) == 0
    return {"root": out, "provided": provided, "first": f"{pairs[0][0]}___{pairs[0][1]}"}


def generate(ckpt, root, out, *extra) -> int:
    return main(["generate", "--checkpoint", str(ckpt), "--split", "test", "--out", str(out), "--device", "cpu",
                 "--workers", "0", "--data-root", str(root), *extra])


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_provided_target_parsing_end_to_end(tiny_run, imported, tmp_path, capsys):
    root, provided, first = imported["root"], imported["provided"], imported["first"]
    for mode in ("provided", "ground-truth", "ours"):
        assert generate(tiny_run["ckpt"], root, tmp_path / mode, "--target-parsing", mode) == 0, capsys.readouterr().err
    for name, labels in provided.items():  # the parsing stage 2 used is the provided one, unchanged
        np.testing.assert_array_equal(read(tmp_path / "provided" / f"{name}_parsing.png"), labels)
        gt = read(tmp_path / "ground-truth" / f"{name}_parsing.png")
        assert np.array_equal(gt, labels) == (name == first)
    # same seed, same weights: a provided parsing equal to the ground truth gives the same image,
    # a different one another image
    np.testing.assert_array_equal(read(tmp_path / "provided" / f"{first}.png"),
                                  read(tmp_path / "ground-truth" / f"{first}.png"))
    other = next(n for n in provided if n != first)
    assert not np.array_equal(read(tmp_path / "provided" / f"{other}.png"),
                              read(tmp_path / "ground-truth" / f"{other}.png"))
    for name in provided:  # stage 1's prediction is neither (a 2-step model)
        assert read(tmp_path / "ours" / f"{name}_parsing.png").shape == provided[name].shape


def test_generator_only_checkpoint_needs_a_given_parsing(tiny_run, imported, tmp_path, capsys):
    ckpt = tmp_path / "generator-only"
    save_checkpoint(ckpt, models={"generator": read_model_state(tiny_run["ckpt"], "generator")},
                    config_dict=read_checkpoint_config(tiny_run["ckpt"]))
    assert generate(ckpt, imported["root"], tmp_path / "g", "--target-parsing", "provided") == 0
    assert generate(tiny_run["ckpt"], imported["root"], tmp_path / "full", "--target-parsing", "provided") == 0
    for name in imported["provided"]:  # stage 1 never runs with a provided parsing: identical images
        np.testing.assert_array_equal(read(tmp_path / "g" / f"{name}.png"), read(tmp_path / "full" / f"{name}.png"))
    capsys.readouterr()
    assert generate(ckpt, imported["root"], tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no stage 1" in err and "--target-parsing provided" in err
    assert str(ckpt) in err


def test_provided_parsing_folder_missing_is_one_line(tiny_run, tmp_path, capsys):
    assert generate(tiny_run["ckpt"], tiny_run["root"], tmp_path / "o", "--target-parsing", "provided") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "parsing-pred" in err and "import-official" in err
