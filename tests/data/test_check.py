"""`spgnet check` finds every planted fault, names file and line, and exits 1; a clean set exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spgnet.cli import main
from spgnet.config import DatasetConfig
from spgnet.data.check import KINDS, check_dataset

H, W = 128, 88
CHECK_SET = ["--set", f"data.image_size=[{H},{W}]", "--set", "data.use_flow=true"]


@pytest.fixture(scope="module")
def clean_root(synthetic_dataset) -> Path:
    return synthetic_dataset(4, 2, (H, W), 3)


@pytest.fixture()
def root(clean_root, writable_copy) -> Path:
    return writable_copy(clean_root)


def run_check(root: Path, capsys, *extra: str) -> tuple[int, str]:
    rc = main(["check", str(root), *CHECK_SET, *extra])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def annotation_rows(path: Path) -> dict[str, tuple[int, list[int], list[int]]]:
    """Independent reader: {name: (line, ys, xs)} of a PATN CSV."""
    rows = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        name, ys, xs = line.split(":")
        if name.strip() == "name":
            continue
        rows[name.strip()] = (lineno, json.loads(ys), json.loads(xs))
    return rows


def first_train_image(root: Path) -> tuple[str, int]:
    """(name, annotation line) of the first annotated train image."""
    rows = annotation_rows(root / "annotation-train.csv")
    name = sorted(rows, key=lambda n: rows[n][0])[0]
    return name, rows[name][0]


def stem(name: str) -> str:
    return os.path.splitext(name)[0]


def test_clean_dataset_passes(clean_root, capsys):
    rc, out = run_check(clean_root, capsys)
    assert rc == 0, out
    assert "no problems found" in out
    report = check_dataset(DatasetConfig(root=str(clean_root), image_size=[H, W], use_flow=True))
    assert report.ok
    assert report.splits["train"].pairs == 4 and report.splits["test"].pairs == 2
    assert report.splits["train"].flows == 4
    n_train_images = len(list((clean_root / "train").iterdir()))
    assert report.splits["train"].images == n_train_images == report.splits["train"].annotations


def test_missing_image(root, capsys):
    name, line = first_train_image(root)
    (root / "train" / name).unlink()
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "missing image (1):" in out
    assert f"annotation-train.csv:{line}:" in out and stem(name) in out


def test_truncated_image(root, capsys):
    name, _ = first_train_image(root)
    path = root / "train" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "undecodable image (1):" in out
    assert str(path) in out


def test_wrong_image_size(root, capsys):
    name, _ = first_train_image(root)
    path = root / "train" / name
    Image.new("RGB", (W, H - 10)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "wrong image size (1):" in out
    assert f"{path}: image is {H - 10}x{W}" in out


def test_malformed_annotation_row(root, capsys):
    path = root / "annotation-train.csv"
    lines = path.read_text().splitlines()
    _, line = first_train_image(root)
    lines[line - 1] = lines[line - 1].rsplit(":", 1)[0] + ": [1, 2, oops]"
    path.write_text("\n".join(lines) + "\n")
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "malformed annotation row (1):" in out
    assert f"annotation-train.csv:{line}:" in out


def test_pair_naming_unknown_image(root, capsys):
    path = root / "pairs-train.csv"
    text = path.read_text()
    n_lines = len(text.splitlines())
    name, _ = first_train_image(root)
    path.write_text(text + f"ghost.jpg,{name}\n")
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "unknown image in pair (1):" in out
    assert f"pairs-train.csv:{n_lines + 1}: 'ghost.jpg' has no row in annotation-train.csv" in out


def test_missing_parsing(root, capsys):
    name, _ = first_train_image(root)
    path = root / "parsing" / f"{stem(name)}.png"
    path.unlink()
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "missing parsing (1):" in out and str(path) in out


def test_parsing_wrong_size(root, capsys):
    name, _ = first_train_image(root)
    path = root / "parsing" / f"{stem(name)}.png"
    Image.fromarray(np.zeros((H // 2, W), np.uint8)).save(path)
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "parsing wrong size (1):" in out
    assert f"{path}: parsing is {H // 2}x{W}" in out


def test_parsing_label_out_of_range(root, capsys):
    name, _ = first_train_image(root)
    path = root / "parsing" / f"{stem(name)}.png"
    labels = np.asarray(Image.open(path)).copy()
    labels[:3, :2] = 25  # 6 pixels
    Image.fromarray(labels).save(path)
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "parsing label out of range (1):" in out
    assert f"{path}: 6 pixel(s) with label(s) [25]" in out


def test_keypoint_outside_image(root, capsys):
    path = root / "annotation-train.csv"
    rows = annotation_rows(path)
    name, line = first_train_image(root)
    _, ys, xs = rows[name]
    xs[4], ys[4] = W + 7, 10  # right wrist beyond the right border
    lines = path.read_text().splitlines()
    lines[line - 1] = f"{name}: {json.dumps(ys)}: {json.dumps(xs)}"
    path.write_text("\n".join(lines) + "\n")
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "keypoint outside image (1):" in out
    assert f"annotation-train.csv:{line}:" in out and f"#4 at ({W + 7}, 10)" in out


def test_truncated_flow(root, capsys):
    path = sorted((root / "flow").iterdir())[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "truncated flow (1):" in out
    assert f"{path}: {len(data) - 100} bytes, expected {len(data)}" in out


def test_flow_wrong_size(root, capsys):
    from spgnet.data.corr import write_corr

    path = sorted((root / "flow").iterdir())[0]
    write_corr(path, np.zeros((2, H, W - 8), np.float32), np.zeros((H, W - 8), np.uint8))
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "flow wrong size (1):" in out and f"{path}: flow is {H}x{W - 8}" in out


def test_missing_flow_when_flow_is_used(root, capsys):
    path = sorted((root / "flow").iterdir())[0]
    path.unlink()
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "missing flow (1):" in out and str(path) in out
    # without data.use_flow an absent flow file is not a problem
    assert main(["check", str(root), "--set", f"data.image_size=[{H},{W}]"]) == 0
    capsys.readouterr()


def test_image_without_annotation(root, capsys):
    path = root / "annotation-train.csv"
    name, line = first_train_image(root)
    lines = path.read_text().splitlines()
    del lines[line - 1]
    path.write_text("\n".join(lines) + "\n")
    n_pairs_naming = sum(name in row.split(",") for row in (root / "pairs-train.csv").read_text().splitlines())
    rc, out = run_check(root, capsys)
    assert rc == 1
    assert "image without annotation (1):" in out and f"{root / 'train' / name}: no row in annotation-train.csv" in out
    assert f"unknown image in pair ({n_pairs_naming}):" in out


def test_many_faults_all_reported_with_exact_counts(root, capsys):
    rows = annotation_rows(root / "annotation-train.csv")
    names = sorted(rows, key=lambda n: rows[n][0])
    for name in names[:3]:  # three missing parsing maps, listed at most once each
        (root / "parsing" / f"{stem(name)}.png").unlink()
    (root / "train" / names[3]).write_bytes(b"not an image")
    with open(root / "pairs-test.csv", "a") as f:
        f.write("only-one-field\n")
    flow = sorted((root / "flow").iterdir())[-1]
    flow.write_bytes(flow.read_bytes()[:4])

    rc, out = run_check(root, capsys, "--max-list", "2")
    assert rc == 1
    assert "missing parsing (3):" in out and "... and 1 more" in out
    assert "undecodable image (1):" in out
    assert "malformed pair row (1):" in out and "pairs-test.csv:" in out
    assert "truncated flow (1):" in out

    report = check_dataset(DatasetConfig(root=str(root), image_size=[H, W], use_flow=True))
    assert report.counts() == {
        "malformed pair row": 1, "undecodable image": 1, "missing parsing": 3, "truncated flow": 1,
    }
    assert list(report.counts()) == [k for k in KINDS if k in report.counts()]


def test_missing_root_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["check", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "nowhere: dataset folder not found" in err


def test_subprocess_no_traceback(root):
    name, _ = first_train_image(root)
    (root / "train" / name).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "pairs-train.csv").write_text("from,to\na.jpg\n")
    proc = subprocess.run(
        [sys.executable, "-m", "spgnet", "check", str(root), *CHECK_SET],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "undecodable image (1):" in proc.stdout and "malformed pair row (1):" in proc.stdout
