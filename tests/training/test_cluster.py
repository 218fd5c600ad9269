"""Training that a cluster can trust (docs/operations.md): SIGTERM / SIGINT / SIGUSR1 finish
the step, save `last`, log it and exit 75, and the resume is bit-identical (a real signal
to a real process group, loader worker included); one writer per run directory (a real
second process holds the lock; a killed holder's lock is taken over); numbered run
folders that never collide; resume from the copy left between the two renames; a full
disk; bad data and an empty test split refused before the first step; metrics.jsonl and
TensorBoard without the re-run steps; a final line with metrics; the non-finite message.

A tiny model (channels 4-8) on 12 synthetic train pairs at 64x44, one torch thread.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import spgnet.utils.checkpoint as ckpt
from spgnet.cli import main
from spgnet.config import dump_config
from spgnet.data.layout import read_pairs_csv
from spgnet.training.logs import next_run_dir
from spgnet.training.trainer import EXIT_STOPPED, Trainer
from spgnet.utils.checkpoint import read_checkpoint_info

import helpers
from helpers import SIZE
from test_training import STEPS_PER_EPOCH, SUBPROCESS_ENV, TEST_PAIRS, TRAIN_PAIRS, assert_same_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["train.val_every=0", "train.precise_bn_batches=0", "train.log_every=1"]


@pytest.fixture(scope="module")
def data_root(synthetic_dataset) -> Path:
    return synthetic_dataset(TRAIN_PAIRS, TEST_PAIRS, SIZE, 3)


@pytest.fixture(autouse=True)
def restore_determinism():
    flag = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(flag)


def write_config(path: Path, root: Path, *overrides: str) -> Path:
    path.write_text(dump_config(helpers.tiny_config(root, *overrides)))
    return path


def train(config: Path, run: Path, *args: str) -> int:
    return main(["train", "--config", str(config), "--run-dir", str(run), "--no-progress", *args])


def one_line(capsys, code: int, expected: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected, err
    assert len(err.splitlines()) == 1 and err.startswith("spgnet ") and "Traceback" not in err, err
    return err


def steps_logged(run: Path, kind: str = "train") -> list[int]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if r["kind"] == kind]


def steps_so_far(run: Path) -> list[int]:
    """The train steps another process has logged so far (a line being written is skipped)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return []
    records = [read_json_line(line) for line in lines]
    return [r["step"] for r in records if r and r.get("kind") == "train"]


def read_json_line(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:
        return None


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- stop signals


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_cleanly_and_resume_is_bit_identical(data_root, tmp_path, capsys):
    """SLURM signals every process of the job: the loader worker gets SIGTERM too and must
    not die. The run finishes its step, saves `last` mid-epoch (save_every=0: no other
    save there), exits 75 with one line; resumed, it ends bit-identical to a run never
    stopped (hflip, GAN, a validation after the resume)."""
    steps = STEPS_PER_EPOCH + 3
    common = ["train.deterministic=true", "data.hflip=true", f"train.max_steps={steps}",
              "train.losses.adversarial_start_epoch=1", "train.log_every=1", "train.val_pairs=2",
              "train.precise_bn_batches=2"]
    Trainer(helpers.tiny_config(data_root, *common), run_dir=tmp_path / "ref", progress=False).fit()

    config = write_config(tmp_path / "tiny.yaml", data_root, *common)
    run = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "spgnet", "train", "--config", str(config), "--run-dir", str(run), "--no-progress",
           "--set", "train.workers=1"]
    proc = subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a job's
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(s >= 2 for s in steps_so_far(run)):
                os.killpg(proc.pid, signal.SIGSTOP)  # freeze every process where it is,
                os.killpg(proc.pid, signal.SIGTERM)  # signal all of them (worker included),
                os.killpg(proc.pid, signal.SIGCONT)  # and let them handle it
                break
            time.sleep(0.02)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_STOPPED == 75, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spgnet train: stopped by SIGTERM at step "), err
    info = read_checkpoint_info(run / "checkpoints" / "last")
    extra = ckpt.torch_load_plain(run / "checkpoints" / "last" / "training_state.pt")["extra"]
    assert extra["step"] == info["step"] and extra["epoch"] == 0 and 0 < extra["epoch_step"] < STEPS_PER_EPOCH
    assert f"stopped by SIGTERM at step {info['step']} (epoch 1, batch {extra['epoch_step']})" in lines[0]
    log = (run / "log.txt").read_text()
    assert f"stopped by SIGTERM at step {info['step']}" in log and "--resume" in log
    assert leftovers(run) == []  # no .last.tmp-* folder left behind

    assert train(config, run, "--resume", "--set", "train.workers=0") == 0, capsys.readouterr().err
    assert_same_checkpoint(tmp_path / "ref" / "checkpoints" / "last", run / "checkpoints" / "last")
    assert steps_logged(run) == list(range(1, steps + 1))


@pytest.mark.parametrize("name", ["SIGINT", "SIGUSR1"])
def test_sigint_and_sigusr1_save_last_and_exit_75(data_root, tmp_path, monkeypatch, capsys, name):
    """A real signal delivered to this process during step 2 (as Ctrl-C or SLURM's
    --signal=USR1@T would): step 2 completes, `last` holds it, one line, exit 75; the
    process's own handler is back afterwards."""
    sig = getattr(signal, name)
    before = signal.getsignal(sig)
    real_step = Trainer.train_step

    def train_step(self, batch):
        if self.step + 1 == 2:
            os.kill(os.getpid(), sig)  # handled between bytecodes: in the middle of this step
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    config = write_config(tmp_path / "tiny.yaml", data_root, *FAST, "train.max_steps=5")
    run = tmp_path / "run"
    err = one_line(capsys, train(config, run), 75)
    assert err.startswith(f"spgnet train: stopped by {name} at step 2 (epoch 1, batch 2); saved {run}")
    assert read_checkpoint_info(run / "checkpoints" / "last")["step"] == 2
    assert f"stopped by {name} at step 2" in (run / "log.txt").read_text()
    assert steps_logged(run) == [1, 2]
    assert signal.getsignal(sig) == before
    monkeypatch.undo()
    assert train(config, run, "--resume") == 0  # continues to step 5
    assert read_checkpoint_info(run / "checkpoints" / "last")["step"] == 5 and steps_logged(run) == [1, 2, 3, 4, 5]


def test_second_sigint_stops_at_once(data_root, tmp_path, monkeypatch, capsys):
    """Ctrl-C twice: the second one abandons the save in progress; the previous `last` stays."""
    real_step, real_save = Trainer.train_step, ckpt.save_checkpoint

    def train_step(self, batch):
        if self.step + 1 == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, batch)

    def save_checkpoint(path, **kwargs):
        if kwargs["step"] == 2:  # the save the first Ctrl-C asked for
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(path, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    monkeypatch.setattr(ckpt, "save_checkpoint", save_checkpoint)
    config = write_config(tmp_path / "tiny.yaml", data_root, *FAST, "train.max_steps=5", "train.save_every=1")
    run = tmp_path / "run"
    err = one_line(capsys, train(config, run), 130)
    assert "interrupted" in err
    assert read_checkpoint_info(run / "checkpoints" / "last")["step"] == 1 and leftovers(run) == []
    assert "interrupted by SIGINT: stopped at once, nothing saved" in (run / "log.txt").read_text()


# --------------------------------------------------------------------------- one writer per run directory

HOLDER = ("import sys, time\n"
          "from spgnet.training.lock import RunLock\n"
          "lock = RunLock(sys.argv[1]).acquire()\n"
          "print('locked', flush=True)\n"
          "time.sleep(120)\n")


def test_second_writer_is_refused_and_a_dead_holders_lock_is_taken_over(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    config = write_config(tmp_path / "tiny.yaml", data_root, *FAST, "train.max_steps=1")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], env=SUBPROCESS_ENV, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = one_line(capsys, train(config, run), 2)
        assert f"{run}: run directory in use by another training (pid {holder.pid} on " in err
        assert sorted(p.name for p in run.iterdir()) == [".spgnet-train.lock"]  # the refused run wrote nothing
        err = one_line(capsys, train(config, run, "--resume"), 2)  # resuming is writing too
        assert f"(pid {holder.pid} on " in err
    finally:
        holder.kill()  # SIGKILL: no chance to release anything
        holder.wait()
    assert train(config, run) == 0, capsys.readouterr().err
    assert f"took over the stale lock of pid {holder.pid} on " in (run / "log.txt").read_text()
    # released when the run ended: the next one (in this same process) gets it, and no stale note
    assert train(config, run, "--resume", "--set", "train.max_steps=2") == 0, capsys.readouterr().err
    assert (run / "log.txt").read_text().count("stale lock") == 1


def test_run_folders_started_at_once_never_collide(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    out.mkdir()
    real_mkdir = Path.mkdir
    raced = []

    def mkdir(self, *args, **kwargs):  # another run creates the very folder between our listing and mkdir
        if self.parent == out and self.name == "00000-tiny" and not raced:
            raced.append(real_mkdir(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert next_run_dir(out, "tiny").name == "00001-tiny"

    def mkdir_other_name(self, *args, **kwargs):  # another run took number 2 under another name
        if self.parent == out and self.name == "00002-tiny" and len(raced) == 1:
            raced.append(real_mkdir(out / "00002-other"))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir_other_name)
    assert next_run_dir(out, "tiny").name == "00003-tiny"  # gave number 2 up
    monkeypatch.undo()

    made, errors, start = [], [], threading.Barrier(8)

    def start_run(i: int) -> None:
        start.wait()
        try:
            made.append(next_run_dir(out, "tiny" if i % 2 else f"other{i}"))
        except Exception as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    threads = [threading.Thread(target=start_run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == 8
    numbers = [int(p.name.split("-")[0]) for p in out.iterdir()]
    assert len(numbers) == len(set(numbers)) == 12  # 4 before + 8 now, each number once


# --------------------------------------------------------------------------- crashes


def test_resume_after_a_crash_between_the_two_renames_uses_the_backup(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run)
    last = run / "checkpoints" / "last"
    os.replace(last, last.parent / ".last.old-0badc0de")  # `last` moved aside, the new one never moved in
    assert main(["train", "--run-dir", str(run), "--resume", "--set", "train.max_steps=3", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert read_checkpoint_info(last)["step"] == 3 and leftovers(run) == []
    warnings = [line for line in captured.err.splitlines() if "interrupted save" in line]
    assert len(warnings) == 1 and warnings[0].startswith("spgnet train: warning: "), captured.err
    assert "resuming from the previous checkpoint" in (run / "log.txt").read_text()


def test_disk_full_while_saving_names_the_file_keeps_the_previous_checkpoint(data_root, tmp_path, monkeypatch,
                                                                               capsys):
    real = ckpt._write_bytes
    saves = []

    def write(path, data):
        if path.name == "model-stage1.safetensors":  # the first file of each save
            saves.append(path)
        if len(saves) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ckpt, "_write_bytes", write)
    config = write_config(tmp_path / "tiny.yaml", data_root, *FAST, "train.max_steps=3", "train.save_every=1")
    run = tmp_path / "run"
    err = one_line(capsys, train(config, run), 74)
    last = run / "checkpoints" / "last"
    expected = (f"no space left on device while writing {saves[1]}; the previous checkpoint {last} (step 1) "
                "is intact")
    assert expected in err and "SafetensorError" not in err and "internal error" not in err
    assert expected in (run / "log.txt").read_text()
    assert read_checkpoint_info(last)["step"] == 1 and leftovers(run) == []


@pytest.mark.parametrize("breakage", ["missing parsing", "unreadable image", "missing flow"])
def test_bad_data_is_refused_before_the_first_step(data_root, writable_copy, tmp_path, capsys, breakage):
    """With a loader worker (workers=1), as on a real machine: one line naming the file
    (not the worker's traceback), before any training step."""
    root = writable_copy(data_root)
    a, b = read_pairs_csv(root / "pairs-train.csv")[-1][1:]  # the last pair: the old failure came mid-epoch
    late = root / "train" / b
    extra = []
    if breakage == "missing parsing":
        bad = root / "parsing" / f"{late.stem}.png"
        bad.unlink()
    elif breakage == "unreadable image":
        bad = late
        bad.write_bytes(late.read_bytes()[:10])
    else:
        bad = root / "flow" / f"{Path(a).stem}___{Path(b).stem}.corr"
        bad.unlink()
        extra = ["train.flow=file"]
    config = write_config(tmp_path / "tiny.yaml", root, *FAST, "train.max_steps=20", "train.workers=1", *extra)
    run = tmp_path / "run"
    err = one_line(capsys, train(config, run), 2)
    assert str(bad) in err, err
    assert not (run / "checkpoints").exists()
    log = (run / "log.txt").read_text()
    assert "training tiny:" not in log and f"error: {bad}" in log


def test_empty_test_split_is_refused_or_trains_without_validation(data_root, writable_copy, tmp_path, capsys):
    root = writable_copy(data_root)
    (root / "pairs-test.csv").write_text("from,to\n")
    config = write_config(tmp_path / "tiny.yaml", root, "train.max_steps=6", "train.precise_bn_batches=0")
    err = one_line(capsys, train(config, tmp_path / "run"), 2)
    assert "pairs-test.csv: the test split has no pairs" in err and "train.val_every=0" in err
    assert not (tmp_path / "run" / "checkpoints").exists()

    run = tmp_path / "no-val"
    assert train(config, run, "--set", "train.val_every=0") == 0  # an epoch boundary (6 steps) crossed
    assert not (run / "checkpoints" / "best").exists() and steps_logged(run, "val") == []
    tr = Trainer(helpers.tiny_config(root, "train.val_every=0", "train.precise_bn_batches=0"), run_dir=tmp_path / "v",
                 progress=False)
    assert tr.validate() == {}  # no numbers from no data, no scheduler step, no `best`
    assert not (tmp_path / "v" / "checkpoints").exists()
    assert all(s.num_bad_epochs == 0 and s.last_epoch == 0 for s in tr.schedulers.values())
    tr.close()


# --------------------------------------------------------------------------- logs after a resume


def test_resume_drops_the_logged_steps_that_run_again(data_root, tmp_path):
    """Killed after step 4 was logged but with `last` at step 2: steps 3 and 4 run again
    after the resume and must appear once in metrics.jsonl and in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = helpers.tiny_config(data_root, *FAST, "train.max_steps=6", "train.save_every=2")
    run = tmp_path / "run"
    tr = Trainer(cfg, run_dir=run, progress=False)
    real_save = tr.save

    def save(name):
        if tr.step == 4:
            raise RuntimeError("simulated crash")
        real_save(name)

    tr.save = save
    with pytest.raises(RuntimeError, match="simulated crash"):
        tr.fit()
    assert steps_logged(run) == [1, 2, 3, 4] and read_checkpoint_info(run / "checkpoints" / "last")["step"] == 2
    assert "internal error: RuntimeError: simulated crash" in (run / "log.txt").read_text()
    Trainer(cfg, run_dir=run, resume=True, progress=False).fit()
    assert steps_logged(run) == [1, 2, 3, 4, 5, 6]
    assert "dropped 2 record(s) logged after step 2" in (run / "log.txt").read_text()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/l1")] == [1, 2, 3, 4, 5, 6]


def test_final_line_has_metrics_also_after_a_resume(data_root, tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", data_root, *FAST, "train.max_steps=2")
    run = tmp_path / "run"
    for args in ([], ["--resume"], ["--resume", "--set", "train.max_steps=3"]):  # new, finished, continued
        assert train(config, run, *args) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"run: {run}  step ") and "  train: ce=" in line and " l1=" in line, line
    assert line.startswith(f"run: {run}  step 3  ")


def test_nonfinite_statistics_message_names_a_checkpoint_only_when_there_is_one(data_root, tmp_path):
    from spgnet.training.losses import NonFiniteLossError
    from test_training import first_batch

    tr = Trainer(helpers.tiny_config(data_root, *FAST), run_dir=tmp_path / "run", progress=False)
    batch = first_batch(tr)
    batch["src_image"] = batch["src_image"].clone()
    batch["src_image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError) as info:
        tr.train_step(batch)
    assert "no checkpoint has been saved yet" in str(info.value) and "resume" not in str(info.value)
    tr.save("last")
    with pytest.raises(NonFiniteLossError, match=rf"resume from the last checkpoint {tmp_path / 'run'}.*last \(step 0\)"):
        tr.train_step(batch)
    tr.close()
