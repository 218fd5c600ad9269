"""File helpers: atomic writes and 8-bit image I/O with errors that name the file."""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from spgnet import SPGNetError


_UMASK = os.umask(0)
os.umask(_UMASK)

# errno values that mean the disk (or the user's quota) is full
NO_SPACE_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)


class NoSpaceError(SPGNetError):
    """Writing ``path`` failed because the device (or the quota) is full. The CLI exits
    with :attr:`exit_code` (74, ``EX_IOERR``) instead of the usual 2."""

    exit_code = 74

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the device is full (ENOSPC / EDQUOT, or a NoSpaceError)."""
    return isinstance(exc, NoSpaceError) or (isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS)


def _umask() -> int:
    """The process umask now (Linux: read from /proc, so a umask set after import counts,
    without the thread-unsafe set-and-restore); elsewhere the umask at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync it and rename it
    to ``path``, so a crash never leaves a half-written file under the final name. The
    file gets the usual permissions (0666 less the umask). A full device raises
    :class:`NoSpaceError` naming ``path`` (the temporary file is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if is_no_space(exc) and not isinstance(exc, NoSpaceError):
            raise NoSpaceError(f"no space left on device while writing {path}", path) from None
        raise


def write_new_file(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (it must not exist), fsync it. Permissions
    0666 less the umask, like any file Python creates. OSError as raised (ENOSPC when the
    device is full: the caller says what it was writing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike, what: str = "JSON file"):
    """The parsed content of a UTF-8 JSON file; SPGNetError naming the file (and ``what`` it
    should be) when it is missing, unreadable or not JSON. The one JSON reader of the package."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SPGNetError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise SPGNetError(f"{path}: is a directory, expected a {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SPGNetError(f"{path}: invalid JSON: the {what} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise SPGNetError(f"{path}: cannot read {what} ({exc.strerror})") from None


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; raise SPGNetError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise SPGNetError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot decode image ({exc})") from None


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG (mode L or P) as ``(H, W)`` uint8 labels, never palette-converted."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                raise SPGNetError(f"{path}: parsing must be a single-channel label PNG, got mode {im.mode}")
            return np.asarray(im).astype(np.uint8) if im.mode in ("L", "P") else np.asarray(im).astype(np.int64).clip(0, 255).astype(np.uint8)
    except FileNotFoundError:
        raise SPGNetError(f"{path}: parsing file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot decode parsing PNG ({exc})") from None


def encode_png(array: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of an ``(H, W)`` / ``(H, W, 3)`` uint8 array (level 1: fast, larger files)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_image(array: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Atomically write a uint8 ``(H, W, 3)`` or ``(H, W)`` array; format from the suffix."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if fmt is None:
        raise SPGNetError(f"{path}: unsupported image suffix (use .png or .jpg)")
    buf = io.BytesIO()
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format=fmt, **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def image_to_tensor(array: np.ndarray):
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` in [-1, 1]."""
    import torch

    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # e.g. np.asarray(PIL image): torch warns about read-only arrays
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(t) -> np.ndarray:
    """float ``(3, H, W)`` in [-1, 1] -> uint8 ``(H, W, 3)`` (rounded, clamped)."""
    return t.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
