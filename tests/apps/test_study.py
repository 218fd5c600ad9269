"""``spgnet study`` on a tiny budget: 2 variants x 2 seeds x 2 steps produce the table,
results and plots; an interrupted study continues without redoing finished runs; bad study
files are one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from helpers import TINY_OVERRIDES
from spgnet import SPGNetError
from spgnet.apps import study as study_module
from spgnet.apps.study import load_study, run_study, summarise
from spgnet.cli import main

SHARED = [o for o in TINY_OVERRIDES if not o.startswith("data.load_size")] + [
    "train.max_steps=2", "train.val_every=0", "train.precise_bn_batches=0", "train.save_every=1"]


def write_study(tmp_path, **changes) -> str:
    raw = {"name": "tiny", "description": "two generator variants", "base": "synthetic-small", "set": SHARED,
           "seeds": [0, 1], "data": {"train_pairs": 8, "test_pairs": 3, "size": [48, 32], "seed": 0},
           "variants": {"Full": ["model.generator.variant=full"], "Baseline": ["model.generator.variant=baseline"]}}
    raw.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def quiet_log():
    lines = []
    return lines, lines.append


def test_study_writes_table_and_resumes_without_redoing(tmp_path, monkeypatch, quiet_log, one_thread):
    lines, log = quiet_log
    study = load_study(write_study(tmp_path))
    out = tmp_path / "out"
    # interrupt the third run: the first two finish, then the study dies
    real_run_one, calls = study_module.run_one, []

    def dying(*args, **kwargs):
        calls.append(args[1:3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_one(*args, **kwargs)

    monkeypatch.setattr(study_module, "run_one", dying)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, log=log)
    finished = sorted(p.parent.name for p in (out / "runs").glob("*/seed*/result.json"))
    assert finished == ["seed0", "seed1"]
    first = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/seed*/result.json")}
    monkeypatch.setattr(study_module, "run_one", real_run_one)

    record = run_study(study, out, log=log)
    assert {p: p.stat().st_mtime_ns for p in first} == first  # finished runs were not redone
    assert sum("training" in line for line in lines) == 4  # each run trained once
    runs = record["runs"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("Baseline", 0), ("Baseline", 1), ("Full", 0), ("Full", 1)]
    for r in runs:
        assert r["steps"] == 2 and r["pairs"] == 3
        for key in ("ssim", "l1", "psnr", "miou", "iou/face", "iou/arms", "iou/shoes"):
            assert key in r
    # the summary is the mean and sample std of the runs, computed here by hand
    full = [r for r in runs if r["variant"] == "Full"]
    ssim = [r["ssim"] for r in full]
    assert math.isclose(record["summary"]["Full"]["ssim"]["mean"], sum(ssim) / 2)
    assert math.isclose(record["summary"]["Full"]["ssim"]["std"], abs(ssim[0] - ssim[1]) / math.sqrt(2))
    table = (out / "table.md").read_text()
    assert table.splitlines()[0].startswith("| variant | SSIM ↑ | L1 ↓ | PSNR ↑")
    assert f"{record['summary']['Full']['ssim']['mean']:.4f} ± {record['summary']['Full']['ssim']['std']:.4f}" in table
    assert json.loads((out / "results.json").read_text())["summary"] == record["summary"]
    for name in ("summary.md", "metrics.png", "curves.png"):
        assert (out / name).stat().st_size > 0
    assert "LPIPS left out" in "\n".join(lines)  # no AlexNet weights here: said, not faked


def test_killed_run_continues_from_its_checkpoint(tmp_path, quiet_log, one_thread):
    """A run with a checkpoint and no result continues (no new 'training' line, the step count
    is the budget); a run folder without a checkpoint starts over."""
    lines, log = quiet_log
    study = load_study(write_study(tmp_path, seeds=[0], variants={"Full": ["model.generator.variant=full"]}))
    out = tmp_path / "out"
    run_study(study, out, log=log)
    result = out / "runs" / "Full" / "seed0" / "result.json"
    before = json.loads(result.read_text())
    result.unlink()  # as if killed after its last checkpoint
    record = run_study(study, out, log=log)
    assert any("continuing from" in line for line in lines)
    assert record["runs"][0]["steps"] == 2
    # resuming reproduces the finished weights: same scores
    np.testing.assert_allclose(record["runs"][0]["ssim"], before["ssim"], rtol=0, atol=1e-6)


def test_summarise_by_hand():
    study = load_study.__globals__["Study"](name="s", base="synthetic-small", variants={"A": [], "B": []}, seeds=[0, 1, 2])
    results = [{"variant": "A", "seed": s, "ssim": v} for s, v in enumerate((0.5, 0.6, 0.7))]
    results += [{"variant": "B", "seed": 0, "ssim": 0.4}]
    summary = summarise(study, results)
    assert math.isclose(summary["A"]["ssim"]["mean"], 0.6) and math.isclose(summary["A"]["ssim"]["std"], 0.1)
    assert summary["B"]["ssim"] == {"mean": 0.4, "std": 0.0, "n": 1}


@pytest.mark.parametrize("change, message", [
    ({"varients": {}}, "unknown key(s) varients"),
    ({"variants": {"Odd": ["model.generator.variant=fancy"]}}, "variant Odd"),
    ({"variants": {"Odd": ["model.generator.nonsense=1"]}}, "variant Odd"),
    ({"seeds": []}, "seeds: must be a non-empty list"),
    ({"seeds": [0, 0]}, "seeds: must not repeat"),
    ({"data": {"train_pairs": 0}}, "data.train_pairs"),
    ({"data": {"sizes": [8, 8]}}, "data: unknown key(s) sizes"),
])
def test_bad_study_files_are_one_line(tmp_path, capsys, change, message):
    path = write_study(tmp_path, **change)
    with pytest.raises(SPGNetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_study(path)
    assert main(["study", "--study", path, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "study.yaml" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_check_only_and_the_shipped_studies(tmp_path, capsys):
    assert main(["study", "--study", write_study(tmp_path), "--out", str(tmp_path / "o"), "--check"]) == 0
    assert "2 variant(s) x 2 seed(s) = 4 runs, all valid" in capsys.readouterr().out
    from pathlib import Path

    shipped = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.yaml"))
    assert [p.stem for p in shipped] == ["pose-representation", "stage2-variants", "training-schemes"]
    for path in shipped:
        study = load_study(path)
        assert len(study.seeds) >= 3
        budgets = {study.config(v, study.seeds[0]).train.max_steps for v in study.variants}
        assert len(budgets) == 1  # the same budget for every variant


def test_a_stopped_run_says_how_to_continue_the_study(tmp_path, monkeypatch, capsys, one_thread):
    """A stop signal during one of the study's runs (the trainer saves ``last`` and raises
    TrainingStopped) ends `spgnet study` with the trainer's exit status, and the line names
    the study command to rerun, not `spgnet train --resume`. The rerun continues."""
    from spgnet.training import trainer as trainer_module
    from spgnet.training.trainer import EXIT_STOPPED, TrainingStopped

    path = write_study(tmp_path, seeds=[0], variants={"Full": ["model.generator.variant=full"]})
    out = tmp_path / "out"
    real_fit = trainer_module.Trainer.fit

    def stopped(self):
        self.save("last")
        raise TrainingStopped(f"stopped by SIGTERM at step {self.step}; continue with: spgnet train --resume",
                              signal_name="SIGTERM", step=self.step)

    monkeypatch.setattr(trainer_module.Trainer, "fit", stopped)
    code = main(["study", "--study", path, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_STOPPED
    assert f"continue the study with: spgnet study --study {path} --out {out}" in err
    assert "train --resume" not in err and "error:" not in err
    monkeypatch.setattr(trainer_module.Trainer, "fit", real_fit)
    assert main(["study", "--study", path, "--out", str(out)]) == 0
    assert "continuing from" in capsys.readouterr().out
