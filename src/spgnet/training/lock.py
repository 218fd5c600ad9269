"""One writer per run directory: an exclusive lock on ``RUN/.spgnet-train.lock``.

:class:`RunLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file and writes the
holder's pid, host and start time into it. The kernel releases the lock when the process
exits, however it exits (``kill -9`` included), so a lock file left behind by a dead
process never blocks a new run: the new holder takes the lock and says whose stale lock
it replaced (:attr:`RunLock.stale`). A second live writer is refused with one line naming
the holder. The lock file itself stays in place (deleting it would let two processes lock
two different files of the same name).

A forked child (a DataLoader worker) would share the locked file description and keep
the run locked after the training process died until the child noticed; so a child
closes its copy at once (``os.register_at_fork``), and the descriptor is close-on-exec.

On a file system without ``flock`` support (some network mounts) the recorded pid is
checked instead: a live process on this host holds the run, anything else is stale.
No torch import here (the tests start lock holders as small subprocesses).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import weakref
from pathlib import Path

from spgnet import SPGNetError

LOCK_FILE = ".spgnet-train.lock"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_HELD: weakref.WeakSet = weakref.WeakSet()  # the locks this process holds


def _drop_in_child() -> None:
    """After a fork, in the child: close the inherited lock descriptors (the parent keeps
    the lock; the child never held it and must not outlive it holding it)."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_in_child)


class RunLockedError(SPGNetError):
    """Another live process writes to this run directory."""


class RunLock:
    """``RunLock(run_dir).acquire()`` ... ``release()`` (also a context manager)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self.stale: dict | None = None  # the record of a dead holder this lock replaced

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read(self, fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            record = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
            return record if isinstance(record, dict) else {}
        except (OSError, ValueError):
            return {}

    def _holder(self, record: dict) -> str:
        pid, host = record.get("pid", "?"), record.get("host", "?")
        since = f", since {record['started']}" if record.get("started") else ""
        return f"pid {pid} on {host}{since}"

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` (one line naming the holder)."""
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            previous = self._read(fd)
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError):
                raise RunLockedError(
                    f"{self.run_dir}: run directory in use by another training ({self._holder(self._read(fd))}); "
                    "one writer per run: wait for it to finish, stop it, or use another --run-dir") from None
            except (ImportError, OSError) as exc:  # no flock here (Windows, some network file systems)
                if isinstance(exc, OSError) and exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS,
                                                                  errno.EINVAL):
                    raise
                pid = previous.get("pid")
                if previous.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() \
                        and pid_alive(pid) and not previous.get("released"):
                    raise RunLockedError(
                        f"{self.run_dir}: run directory in use by another training ({self._holder(previous)}); "
                        "one writer per run: wait for it to finish, stop it, or use another --run-dir") from None
            if previous.get("pid") and not previous.get("released") and previous.get("pid") != os.getpid():
                self.stale = previous  # its holder died without releasing it
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD.add(self)
        return self

    def describe_stale(self) -> str | None:
        """One line about the dead holder this lock replaced, or None."""
        if self.stale is None:
            return None
        return f"took over the stale lock of {self._holder(self.stale)}, which exited without releasing it"

    def release(self) -> None:
        """Mark the lock file released and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.discard(self)
        try:
            record = self._read(fd)
            record["released"] = time.strftime("%Y-%m-%d %H:%M:%S")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass


__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "pid_alive"]
