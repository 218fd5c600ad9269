"""``spgnet train`` / ``spgnet generate`` from the command line: one-line errors with
exit 2 (bad config key, non-finite losses, a pickle payload in a checkpoint), resuming
with the checkpoint's own config, and ``generate`` writing every test pair."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import spgnet.training.trainer as trainer_mod
from spgnet.utils.checkpoint import read_checkpoint_info
from spgnet.cli import main
from spgnet.parsing import NUM_CLASSES

from helpers import SIZE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tiny_run) -> dict:
    """The tiny dataset (8 train / 5 test pairs), its config file and a 2-step run."""
    return tiny_run


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("spgnet "), err
    assert "Traceback" not in err
    return err


def test_bad_config_key_is_one_line_exit_2(setup, tmp_path, capsys):
    code = main(["train", "--config", str(setup["config"]), "--set", "train.bogus_key=1", "--run-dir",
                 str(tmp_path / "r")])
    assert "bogus_key" in one_line_error(capsys, code)
    bad = tmp_path / "bad.yaml"
    bad.write_text(setup["config"].read_text().replace("  batch_size: 2", "  batch_sise: 2"))
    err = one_line_error(capsys, main(["train", "--config", str(bad), "--run-dir", str(tmp_path / "r")]))
    assert "batch_sise" in err and str(bad) in err
    err = one_line_error(capsys, main(["train", "--run-dir", str(tmp_path / "r")]))
    assert "--config" in err


def test_nonfinite_losses_stop_with_one_line(setup, tmp_path, capsys, monkeypatch):
    real = trainer_mod.l1
    monkeypatch.setattr(trainer_mod, "l1", lambda a, b: real(a, b) * float("nan"))
    code = main(["train", "--config", str(setup["config"]), "--run-dir", str(tmp_path / "r"), "--no-progress",
                 "--set", "train.max_nonfinite=2", "--set", "train.max_steps=5"])
    err = one_line_error(capsys, code)
    assert "2 non-finite losses in a row" in err and "l1=nan" in err


def test_resume_uses_checkpoint_config_and_overrides(setup, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(setup["run"], run)
    last = run / "checkpoints" / "last"
    before = load_file(last / "model-generator.safetensors")
    # no --config: the checkpoint's own config; already at max_steps -> nothing to do
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert read_checkpoint_info(last)["step"] == 2
    after = load_file(last / "model-generator.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    # --resume CKPT with an override on top of the stored config
    assert main(["train", "--resume", str(last), "--set", "train.max_steps=3", "--no-progress"]) == 0
    assert read_checkpoint_info(last)["step"] == 3


class Payload:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_resume_refuses_pickle_payload(setup, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(setup["run"], run)
    state_file = run / "checkpoints" / "last" / "training_state.pt"
    state = torch.load(state_file, weights_only=True)
    marker = tmp_path / "code-ran"
    state["extra"]["note"] = Payload(marker)
    torch.save(state, state_file)
    for args in (["--config", str(setup["config"]), "--run-dir", str(run), "--resume"],
                 ["--resume", str(run / "checkpoints" / "last")]):
        err = one_line_error(capsys, main(["train", *args, "--no-progress"]))
        assert str(state_file) in err and "refusing" in err and "pickle" in err
    assert not marker.exists()


def read_pairs(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["from", "to"]
    return [(a, b) for a, b in rows[1:]]


def test_generate_writes_image_and_parsing_for_every_test_pair(setup, tmp_path, capsys):
    out = tmp_path / "gen"
    code = main(["generate", "--checkpoint", str(setup["run"] / "checkpoints" / "last"), "--split", "test",
                 "--out", str(out), "--workers", "0", "--batch-size", "2"])  # 5 pairs: a ragged last batch
    assert code == 0
    pairs = read_pairs(setup["root"] / "pairs-test.csv")
    assert f"wrote {len(pairs)} generated images" in capsys.readouterr().out
    expected = set()
    for a, b in pairs:
        stem = f"{Path(a).stem}___{Path(b).stem}"
        expected |= {f"{stem}.png", f"{stem}_parsing.png"}
        with Image.open(out / f"{stem}.png") as im:
            assert im.mode == "RGB" and im.size == (SIZE[1], SIZE[0])
        with Image.open(out / f"{stem}_parsing.png") as im:
            labels = np.asarray(im)
        assert labels.shape == SIZE and labels.dtype == np.uint8 and labels.max() < NUM_CLASSES
    assert {p.name for p in out.iterdir()} == expected


def test_generate_is_reproducible_by_seed(setup, tmp_path):
    """The SEAN noise is drawn at inference too: with noise scales set to 1 the images
    depend on it, so the same --seed must give the same bytes and another seed others."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(setup["run"] / "checkpoints" / "last", ckpt)
    weights = ckpt / "model-generator.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(weights)
    scales = [k for k in state if k.endswith("noise_scale")]
    assert scales
    for k in scales:
        state[k] = torch.ones_like(state[k])
    save_file(state, str(weights), metadata=metadata)

    def generate(seed: int) -> dict[str, bytes]:
        out = tmp_path / f"gen{seed}-{len(list(tmp_path.iterdir()))}"
        assert main(["generate", "--checkpoint", str(ckpt), "--out", str(out), "--workers", "0", "--limit", "2",
                     "--seed", str(seed)]) == 0
        return {p.name: p.read_bytes() for p in out.glob("*.png") if not p.name.endswith("_parsing.png")}

    first, again, other = generate(0), generate(0), generate(1)
    assert len(first) == 2 and first == again and first != other
