"""Writing what ``transfer`` and ``animate`` produce: output-suffix checks, frame strips,
GIF (Pillow) and MP4 (H.264 through imageio-ffmpeg when installed), atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from spgnet import SPGNetError
from spgnet.utils.io import atomic_write_bytes

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg")
ANIMATION_OUTPUTS = (".gif", ".mp4")


def check_output_suffix(path: str | os.PathLike, allowed: tuple[str, ...], what: str = "--out") -> Path:
    """``path`` as a Path when its suffix is one of ``allowed``; SPGNetError otherwise
    (checked before any work is done)."""
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise SPGNetError(f"{what} {path}: unsupported suffix {path.suffix or '(none)'!r} "
                          f"(use {', '.join(allowed)})")
    return path


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` -> ``(H, N W, 3)``: the frames side by side."""
    n, h, w, c = np.shape(frames)
    return np.asarray(frames).transpose(1, 0, 2, 3).reshape(h, n * w, c)


def check_animation_output(path: str | os.PathLike, fps: float = 8.0) -> Path:
    """``path`` as a Path when it can be written: a .gif, or a .mp4 with imageio-ffmpeg
    importable, and ``0 < fps <= 100``; SPGNetError otherwise (checked before any work)."""
    path = check_output_suffix(path, ANIMATION_OUTPUTS)
    if not 0 < fps <= 100:
        raise SPGNetError(f"--fps {fps}: must lie in (0, 100]")
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise SPGNetError(f"{path}: writing MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                              "or write a .gif") from None
    return path


def write_animation(frames: np.ndarray, path: str | os.PathLike, fps: float = 8.0) -> None:
    """Atomically write ``(N, H, W, 3)`` uint8 frames as an endless GIF (Pillow) or an MP4
    (H.264 through imageio-ffmpeg, when it is installed). In a GIF, a frame identical to
    the one before it is merged into it (its time is added), as Pillow does."""
    path = check_animation_output(path, fps)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise SPGNetError(f"{path}: frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       loop=0)
        atomic_write_bytes(path, buf.getvalue())
    else:
        _write_mp4(frames, path, fps)


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    import imageio_ffmpeg

    # yuv420p needs even sizes: repeat the last row/column rather than let ffmpeg rescale
    n, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    try:
        writer = imageio_ffmpeg.write_frames(str(tmp), (w + w % 2, h + h % 2), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", macro_block_size=1, quality=8)
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["IMAGE_OUTPUTS", "ANIMATION_OUTPUTS", "check_output_suffix", "check_animation_output", "frame_strip",
           "write_animation"]
