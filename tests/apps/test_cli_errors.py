"""One clear line for every bad input of `generate`, `evaluate` and `train` that used to end
in "internal error", a worker's traceback or a silent success with nothing done: bad
--limit / --batch-size / --out, an empty split, a file corrupt inside (found by a loader
worker), a dataset file missing (found before scoring); inference without the training
state; the backup checkpoint's warning once, on one line; config values at the CLI."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from spgnet.cli import main
from spgnet.data.layout import read_pairs_csv

pytestmark = pytest.mark.usefixtures("one_thread")


def generate(ckpt, root, out, *extra) -> int:
    return main(["generate", "--checkpoint", str(ckpt), "--split", "test", "--out", str(out), "--device", "cpu",
                 "--workers", "0", "--data-root", str(root), *extra])


def messages(err: str) -> list[str]:
    """stderr without generate's progress bar (tqdm redraws it with carriage returns)."""
    return [line for line in re.split(r"[\r\n]", err) if line.strip() and not PROGRESS.match(line)]


PROGRESS = re.compile(r"^generate \w+: +\d+%\|")


def one_line(capsys, code: int, expected: int = 2) -> str:
    err = capsys.readouterr().err
    assert code == expected, err
    lines = messages(err)
    assert len(lines) == 1 and lines[0].startswith("spgnet ") and "Traceback" not in err, err
    assert "internal error" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--limit", "-1"], ["--limit -1: must be 0 (every pair) or a positive number of pairs"]),
    (["--batch-size", "0"], ["--batch-size 0: must be at least 1"]),
    (["--workers", "-2"], ["--workers -2: must be 0"]),
])
def test_generate_bad_arguments_are_one_line(tiny_run, tmp_path, capsys, args, words):
    err = one_line(capsys, generate(tiny_run["ckpt"], tiny_run["root"], tmp_path / "out", *args))
    assert all(w in err for w in words), err
    assert not (tmp_path / "out").exists()


def test_generate_out_is_a_file_is_one_line(tiny_run, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"not a folder")
    err = one_line(capsys, generate(tiny_run["ckpt"], tiny_run["root"], out))
    assert f"--out {out}: is a file, not a folder" in err


def test_generate_empty_split_is_an_error_not_zero_images(tiny_run, writable_copy, tmp_path, capsys):
    root = writable_copy(tiny_run["root"])
    (root / "pairs-test.csv").write_text("from,to\n")
    err = one_line(capsys, generate(tiny_run["ckpt"], root, tmp_path / "out"))
    assert f"{root / 'pairs-test.csv'}: split 'test' has no pairs: nothing to generate" in err
    assert not (tmp_path / "out").exists()


def test_generate_needs_no_training_state_and_warns_once_about_a_backup(tiny_run, tmp_path, capsys):
    ckpt = tmp_path / "checkpoints" / "last"
    shutil.copytree(tiny_run["ckpt"], ckpt)
    (ckpt / "training_state.pt").unlink()  # 18.5 MB of optimizer state inference never needs
    assert generate(ckpt, tiny_run["root"], tmp_path / "a", "--limit", "2") == 0, capsys.readouterr().err
    assert len(list((tmp_path / "a").glob("*.png"))) == 4
    assert messages(capsys.readouterr().err) == []

    os.replace(ckpt, ckpt.parent / ".last.old-0badc0de")  # a save killed between its two renames
    assert generate(ckpt, tiny_run["root"], tmp_path / "b", "--limit", "2") == 0
    assert messages(capsys.readouterr().err) == [
        f"spgnet generate: warning: {ckpt}: missing after an interrupted save; using the previous checkpoint "
        f"{ckpt.parent / '.last.old-0badc0de'}"]
    assert sorted(p.read_bytes() for p in (tmp_path / "a").iterdir()) == \
        sorted(p.read_bytes() for p in (tmp_path / "b").iterdir())


def test_a_corrupt_image_in_a_loader_worker_is_the_original_line(tiny_run, writable_copy, tmp_path, capsys):
    """The header reads (so the check before the run passes), the pixels do not: the
    worker's error reaches the user as its own line, without the worker's traceback."""
    root = writable_copy(tiny_run["root"])
    target = root / "test" / read_pairs_csv(root / "pairs-test.csv")[-1][2]
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    err = one_line(capsys, generate(tiny_run["ckpt"], root, tmp_path / "out", "--workers", "1", "--batch-size", "2"))
    assert err.startswith(f"spgnet generate: error: {target}: cannot decode image (") and "worker" not in err, err


def test_evaluate_checks_the_dataset_files_before_scoring(tiny_run, writable_copy, tmp_path, capsys):
    root = writable_copy(tiny_run["root"])
    generated = tmp_path / "generated"
    generated.mkdir()
    pairs = read_pairs_csv(root / "pairs-test.csv")
    for _, a, b in pairs:  # the targets themselves as "generated" images
        shutil.copy(root / "test" / b, generated / f"{Path(a).stem}___{Path(b).stem}.png")
    missing = root / "parsing" / f"{Path(pairs[-1][2]).stem}.png"
    missing.unlink()
    err = one_line(capsys, main(["evaluate", "--generated", str(generated), "--dataset", str(tiny_run["config"]),
                                 "--root", str(root), "--metrics", "ssim", "--workers", "1", "--device", "cpu",
                                 "--no-progress"]))
    assert f"{missing}: parsing of image " in err and "not found" in err
    assert not (generated / "eval").exists()  # refused before scoring anything


def test_config_values_at_the_cli(tiny_run, tmp_path, capsys, monkeypatch):
    config, run = str(tiny_run["config"]), str(tmp_path / "run")
    err = one_line(capsys, main(["train", "--config", config, "--run-dir", run, "--set", "data.pose.kind={a: 1}"]))
    assert "data.pose.kind: {'a': 1} is not one of" in err
    err = one_line(capsys, main(["train", "--config", config, "--run-dir", run, "--set", "train.batch_size=abc"]))
    assert "train.batch_size: expected a positive integer, got 'abc'" in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = one_line(capsys, main(["train", "--config", config, "--run-dir", run, "--set", "train.device=cuda"]))
    assert "train.device" in err and "CUDA is not available" in err
    monkeypatch.undo()
    assert main(["train", "--config", config, "--run-dir", run, "--no-progress", "--set", "train.lr_g=1e-4",
                 "--set", "train.max_steps=1", "--set", "train.precise_bn_batches=0"]) == 0
    assert "lr_g: 0.0001" in (tmp_path / "run" / "config.yaml").read_text()


def test_transfer_prints_no_pytorch_warning(tiny_run, tmp_path):
    """A photo with the model's aspect ratio (44:64) is used at its own pixels: that array
    is read-only (Pillow), which made PyTorch print a two-line UserWarning on every
    success. A fresh process: PyTorch prints that warning once per process."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image
    from skimage import data

    photo = tmp_path / "astronaut.png"
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, 80:80 + 352])).save(photo)  # 512 x 352 = 64:44
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "spgnet", "transfer", "--checkpoint", str(tiny_run["ckpt"]),
                           "--source", str(photo), "--target-pose", str(photo), "--out", str(tmp_path / "out.png"),
                           "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'out.png'}")
