"""What a checkpoint guarantees on a shared machine (docs/operations.md): a pickle payload is
refused naming the refused global, never with advice to disable the check; files get the
umask's permissions; a full disk names the file and keeps the previous checkpoint; the
clean-up of leftovers spares another live writer's folders; inference reads no training
state; the fallback to the backup copy warns once."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys

import pytest
import torch

import spgnet.utils.checkpoint as ckpt
from spgnet import SPGNetError
from spgnet.utils.checkpoint import CheckpointFallbackWarning, load_checkpoint, read_checkpoint_info
from spgnet.utils.io import NoSpaceError, atomic_write, atomic_write_bytes
from spgnet.utils.weights import _short_reason, torch_load_plain

from test_checkpoint import Tiny, leftovers, make_objects, save


class SystemCall:
    """Unpickling this would call os.system (posix.system): the payload torch 2.14 names
    'unsupported GLOBAL posix.system' (lower/upper case differ between torch versions)."""

    def __reduce__(self):
        return (os.system, ("true",))


def test_pickle_refusal_names_the_global_and_never_suggests_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "payload": SystemCall()}, path)
    with pytest.raises(SPGNetError) as info:
        torch_load_plain(path, "weights file")
    message = str(info.value)
    assert message.startswith(f"{path}: refusing to load this weights file: it holds the pickled Python object "
                              f"{os.system.__module__}.system,"), message
    assert "weights_only" not in message and "Re-running" not in message and "\n" not in message

    model, opt, sched, scaler = make_objects(0)
    last = save(tmp_path / "last", model, opt, sched, scaler)
    state = torch.load(last / "training_state.pt", weights_only=True)
    state["extra"]["note"] = SystemCall()
    torch.save(state, last / "training_state.pt")
    with pytest.raises(SPGNetError, match=rf"training_state\.pt: refusing .* object {os.system.__module__}\.system,"):
        load_checkpoint(last, {"G": Tiny()})


def test_short_reason_drops_the_advice_to_disable_the_check():
    text = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
            "argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to "
            "`False` will likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
            "file from a trusted source.\n\nSomething else went wrong: bad opcode.\n\nCheck the documentation ...")
    assert _short_reason(RuntimeError(text)) == "Weights only load failed."
    assert "unsupported GLOBAL posix.system" in _short_reason(
        RuntimeError(text.replace("Something else went wrong: bad opcode.",
                                  "Trying to load unsupported GLOBAL posix.system whose module posix is blocked.")))


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_checkpoint_file_gets_the_umask_permissions(tmp_path, umask):
    before = os.umask(umask)
    try:
        model, opt, sched, scaler = make_objects(0)
        path = save(tmp_path / "last", model, opt, sched, scaler, ema={"G": model})
        atomic_write_bytes(tmp_path / "other.txt", b"x")
    finally:
        os.umask(before)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert {"model-G.safetensors", "ema-G.safetensors", "training_state.pt", "checkpoint.json"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in modes.items()}
    assert stat.S_IMODE((tmp_path / "other.txt").stat().st_mode) == 0o666 & ~umask


def _no_space_on(monkeypatch, name: str) -> list:
    real, written = ckpt._write_bytes, []

    def write(path, data):
        if path.name == name:
            written.append(path)
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(ckpt, "_write_bytes", write)
    return written


def test_disk_full_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched, scaler = make_objects(0)
    with monkeypatch.context() as m:
        written = _no_space_on(m, "model-G.safetensors")
        with pytest.raises(NoSpaceError) as info:
            save(tmp_path / "first", model, opt, sched, scaler)
    assert str(info.value) == (f"no space left on device while writing {written[0]}; there is no previous checkpoint "
                               f"at {tmp_path / 'first'}, nothing was saved there; free some space and resume")
    assert info.value.exit_code == 74 and not (tmp_path / "first").exists() and leftovers(tmp_path / "first") == []

    path = save(tmp_path / "last", model, opt, sched, scaler, step=3)
    with monkeypatch.context() as m:
        written = _no_space_on(m, "training_state.pt")
        with pytest.raises(NoSpaceError) as info:
            save(path, model, opt, sched, scaler, step=5)
    assert str(info.value).startswith(f"no space left on device while writing {written[0]}; the previous checkpoint "
                                      f"{path} (step 3) is intact")
    assert leftovers(path) == [] and load_checkpoint(path, {"G": Tiny()}, restore_rng=False)["step"] == 3


def test_disk_full_in_an_atomic_write_is_one_error_naming_the_file(tmp_path):
    def fill(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NoSpaceError, match=rf"^no space left on device while writing {tmp_path / 'out.png'}$"):
        atomic_write(tmp_path / "out.png", fill)
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_cleanup_removes_only_folders_of_gone_processes(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = ckpt._host()
    keep = [f".last.tmp-aaaa1111-{live.pid}-{host}", f".last.old-bbbb2222-{live.pid}-{host}",
            ".last.tmp-cccc3333-1-another.host"]  # a live writer here; one elsewhere (cannot be checked)
    drop = [f".last.tmp-dddd4444-{gone.pid}-{host}", ".last.tmp-eeee5555", f".last.old-ffff6666-{gone.pid}-{host}"]
    try:
        for name in keep + drop:
            (tmp_path / name).mkdir()
        save(path, model, opt, sched, scaler, step=4)
        assert leftovers(path) == sorted(keep) and read_checkpoint_info(path)["step"] == 4
    finally:
        live.kill()
        live.wait()


def test_inference_reads_no_training_state(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler, step=7)
    state = torch.load(path / "training_state.pt", weights_only=True)
    state["extra"]["note"] = SystemCall()  # would be refused, if it were read
    torch.save(state, path / "training_state.pt")
    fresh = Tiny()
    info = load_checkpoint(path, {"G": fresh}, restore_rng=False, training_state=False)
    assert info["step"] == 7 and info["extra"] == {}
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    (path / "training_state.pt").unlink()
    assert load_checkpoint(path, {"G": Tiny()}, restore_rng=False)["step"] == 7  # absent: not needed for weights
    with pytest.raises(SPGNetError, match=r"training_state\.pt: checkpoint training state not found"):
        load_checkpoint(path, {"G": Tiny()}, optimizers={"G": opt})


def test_fallback_to_the_backup_warns_once(tmp_path):
    model, opt, sched, scaler = make_objects(0)
    path = save(tmp_path / "last", model, opt, sched, scaler)
    shutil.move(path, tmp_path / ".last.old-0badc0de")  # a save killed between its two renames
    with pytest.warns(CheckpointFallbackWarning) as record:
        for _ in range(3):
            load_checkpoint(path, {"G": Tiny()}, restore_rng=False)
    assert len(record) == 1 and "missing after an interrupted save" in str(record[0].message)
