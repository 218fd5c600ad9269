"""Your own photo in a new pose, and through a pose sequence (DESIGN §11): both stages of
SPGNet (stage-1 target parsing, stage-2 generator) run on one photo from a checkpoint alone.

**Source.** The photo is prepared exactly as ``spgnet prepare`` prepares a dataset
(:func:`spgnet.prepare.prepare_photo`): mediapipe keypoints and person mask, scale to the
checkpoint's ``data.load_size`` height ``H``, pad or crop the width to ``W`` around the
person, coarse CIHP parsing. The checkpoint's ``data.crop`` does not apply (it describes
its dataset's disk images, not photos).

**Target pose**, in the model's ``H x W`` frame, from

* a photo: detected and brought to ``H x W`` with the same geometry as the source;
* an OpenPose JSON file (``people[0].pose_keypoints_2d``, COCO-18 or BODY_25; read by
  :func:`spgnet.pose.read_openpose_json`): coordinates are pixels of the target image.
  They are taken as pixels of an ``H x W`` image (the model's load size) unless a
  ``pose_size = (h, w)`` is given; then they get the photo geometry: a uniform scale to
  height ``H`` (``x' = (x + 0.5) s - 0.5``, pixel centres to pixel centres; the width
  scale is ``round(w H / h) / w``, as the photo resize), then the width is padded
  equally on both sides or cropped to a ``W``-wide window centred on the keypoints
  (for a sequence: one window for all frames, centred on the keypoints of every
  frame, so that motion across the frame stays motion). A joint that leaves the
  picture becomes missing.

**Pose sequence** (``animate``): a folder of OpenPose JSON files and/or photos, in file
name order, or one JSON file holding a list of poses::

    {"size": [H, W],                       # optional: the frame of the coordinates
     "poses": [[[x, y], ... 18 pairs], ...]}  # COCO-18 (x, y) pixels, negative = missing

or a list of OpenPose ``people`` objects, one per frame (``size`` is then the load size
or ``pose_size``)::

    [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]   # 54 or 75 values each

(``"poses"`` entries may also be such objects). An explicit ``pose_size`` overrides the
file's ``"size"``.

**Noise.** The generator adds per-pixel noise in its ACE layers at inference too (as the
official code does); it is drawn from the RNG seeded with ``seed`` inside
:func:`torch.random.fork_rng`, so a photo, pose and seed always give the same image and
the caller's global RNG is left as it was. Frames are rendered in batches
(``batch_size``); a frame's noise depends on its place in the batch sequence, not on the
other frames' poses.

Shapes at the boundary: keypoints ``(18, 2)`` / ``(N, 18, 2)`` float32 (x, y), -1 missing;
images ``(H, W, 3)`` uint8; parsing ``(H, W)`` uint8 CIHP labels.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spgnet import SPGNetError
from spgnet.io import atomic_write_bytes, image_to_tensor, save_image
from spgnet.keypoints import PoseDetector
from spgnet.parsing import colorize, one_hot
from spgnet.pose import (
    NUM_KEYPOINTS, _BODY25_TO_COCO18, is_missing, pose_maps_from_config, read_openpose_json, render_pose_image,
)
from spgnet.prepare import PHOTO_SUFFIXES, PreparedImage, load_photo, prepare_photo

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg")
ANIMATION_OUTPUTS = (".gif", ".mp4")
POSE_SUFFIXES = (".json", *PHOTO_SUFFIXES)


@dataclass
class TransferResult:
    """One generated frame: ``image (H, W, 3)`` uint8, ``parsing (H, W)`` uint8 (stage 1's
    Ŝ_t), the prepared ``source`` and the ``target`` keypoints ``(18, 2)`` in the model frame."""

    image: np.ndarray
    parsing: np.ndarray
    source: PreparedImage
    target: np.ndarray


@dataclass
class AnimationResult:
    """``frames (N, H, W, 3)`` uint8, ``parsing (N, H, W)`` uint8, ``poses (N, 18, 2)``, the
    pose files (or the one sequence file) and the prepared ``source``."""

    frames: np.ndarray
    parsing: np.ndarray
    poses: np.ndarray
    pose_files: list[Path]
    source: PreparedImage


# --------------------------------------------------------------------------- outputs


def check_output_suffix(path: str | os.PathLike, allowed: tuple[str, ...], what: str = "--out") -> Path:
    """``path`` as a Path when its suffix is one of ``allowed``; SPGNetError otherwise
    (checked before any work is done)."""
    path = Path(path)
    if path.suffix.lower() not in allowed:
        raise SPGNetError(f"{what} {path}: unsupported suffix {path.suffix or '(none)'!r} "
                          f"(use {', '.join(allowed)})")
    return path


def transfer_sheet(result: TransferResult) -> np.ndarray:
    """``(H, 4 W, 3)`` uint8: source | target pose (skeleton) | predicted parsing (colourised) | result."""
    h, w = result.image.shape[:2]
    tiles = [result.source.image, render_pose_image(result.target, (h, w)), colorize(result.parsing), result.image]
    return np.concatenate(tiles, axis=1)


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


# --------------------------------------------------------------------------- poses


def fit_keypoints(kp: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Keypoints ``(..., 18, 2)`` in pixels of a ``from_size = (h, w)`` image -> the model
    frame ``to_size = (H, W)`` by the photo geometry (module docstring): uniform scale to
    height ``H``, then pad or crop the width (one window for all leading dims).
    Missing joints, and joints that leave the picture, are -1."""
    kp = np.asarray(kp, dtype=np.float64)
    h0, w0 = (int(v) for v in from_size)
    height, width = (int(v) for v in to_size)
    missing = is_missing(kp)
    scaled_w = max(1, round(w0 * height / h0))  # the width spgnet.prepare resizes a photo to
    scale = np.array([scaled_w / w0, height / h0])
    out = (kp + 0.5) * scale - 0.5
    if scaled_w > width:
        xs = out[..., 0][~missing]
        centre = 0.5 * (xs.min() + xs.max()) if xs.size else 0.5 * (scaled_w - 1)
        dx = -int(np.clip(round(centre - 0.5 * (width - 1)), 0, scaled_w - width))
    else:
        dx = (width - scaled_w) // 2
    out[..., 0] += dx
    off = (out[..., 0] < -0.5) | (out[..., 0] > width - 0.5) | (out[..., 1] < -0.5) | (out[..., 1] > height - 0.5)
    out = np.clip(out, 0.0, np.array([width - 1, height - 1], dtype=np.float64))
    out[missing | off] = -1.0
    return out.astype(np.float32)


def _openpose_person(person, where: str) -> np.ndarray:
    """One OpenPose ``people`` object -> ``(18, 2)``, with the conventions of
    :func:`spgnet.pose.read_openpose_json` (confidence 0 or (0, 0) = missing)."""
    values = person.get("pose_keypoints_2d", person.get("pose_keypoints")) if isinstance(person, dict) else None
    if not isinstance(values, list):
        raise SPGNetError(f"{where}: no 'pose_keypoints_2d' list")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SPGNetError(f"{where}: pose_keypoints_2d holds non-numbers") from None
    if arr.ndim != 1 or arr.size not in (3 * NUM_KEYPOINTS, 75):
        raise SPGNetError(f"{where}: pose_keypoints_2d has {arr.size} values, expected {3 * NUM_KEYPOINTS} "
                          "(COCO-18 x, y, confidence) or 75 (BODY_25)")
    arr = arr.reshape(-1, 3)
    if len(arr) == 25:
        arr = arr[list(_BODY25_TO_COCO18)]
    kp = arr[:, :2].astype(np.float32)
    kp[(arr[:, 2] <= 0) | ((arr[:, 0] == 0) & (arr[:, 1] == 0)) | is_missing(kp)] = -1.0
    return kp


def _xy_pose(entry, where: str) -> np.ndarray:
    try:
        kp = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError):
        raise SPGNetError(f"{where}: must be {NUM_KEYPOINTS} [x, y] number pairs") from None
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise SPGNetError(f"{where}: must be {NUM_KEYPOINTS} [x, y] pairs, got shape {kp.shape}")
    if not np.isfinite(kp).all():
        raise SPGNetError(f"{where}: holds a non-finite coordinate")
    kp = kp.astype(np.float32)
    kp[is_missing(kp)] = -1.0
    return kp


def read_pose_sequence(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A pose-sequence JSON file (module docstring) -> ``(poses (N, 18, 2), size or None)``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SPGNetError(f"{path}: pose sequence file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SPGNetError(f"{path}: not valid JSON ({exc})") from None
    size = None
    if isinstance(doc, dict):
        if "people" in doc and "poses" not in doc:  # a single OpenPose frame file
            return read_openpose_json(path)[None], None
        if "size" in doc:
            s = doc["size"]
            if not (isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s)):
                raise SPGNetError(f"{path}: 'size' must be [height, width] in pixels, got {s!r}")
            size = (s[0], s[1])
        entries = doc.get("poses")
        key = "poses"
        if not isinstance(entries, list):
            raise SPGNetError(f"{path}: expected a 'poses' list ({{\"size\": [H, W], \"poses\": [[[x, y], ...], ...]}}) "
                              "or a list of OpenPose people objects")
    elif isinstance(doc, list):
        entries, key = doc, ""
    else:
        raise SPGNetError(f"{path}: expected a JSON object with 'poses' or a list of poses")
    if not entries:
        raise SPGNetError(f"{path}: the pose list is empty")
    poses = [_openpose_person(e, f"{path}: {key}[{i}]") if isinstance(e, dict) else _xy_pose(e, f"{path}: {key}[{i}]")
             for i, e in enumerate(entries)]
    return np.stack(poses), size


def list_pose_files(folder: str | os.PathLike) -> list[Path]:
    """The OpenPose JSON files and photos of ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in POSE_SUFFIXES)
    if not files:
        raise SPGNetError(f"{folder}: no pose files in this folder (OpenPose .json or JPEG/PNG photos)")
    return files


# --------------------------------------------------------------------------- the model


def load_transfer_model(checkpoint: str | os.PathLike, device: str | torch.device = "auto",
                        overrides: list[str] | None = None):
    """:func:`spgnet.pipeline.load_pipeline` for photos (``device``: auto, cpu, cuda, cuda:N): any checkpoint problem (missing,
    not an spgnet checkpoint, config and weights that do not fit, a flow photos cannot
    have) is one SPGNetError naming the checkpoint."""
    from spgnet.pipeline import load_pipeline

    from spgnet.training.distributed import resolve_device

    try:
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    except RuntimeError:
        raise SPGNetError(f"--device {device!r}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SPGNetError(f"--device {device}: CUDA is not available on this machine")
    try:
        net = load_pipeline(checkpoint, device, overrides)
    except SPGNetError as exc:
        message = str(exc)
        raise SPGNetError(message if str(checkpoint) in message else f"checkpoint {checkpoint}: {message}") from None
    if net.cfg.train.flow == "file":
        raise SPGNetError(f"checkpoint {checkpoint}: it uses train.flow=file (precomputed .corr flow), which a photo "
                          "does not have; run it with --set train.flow=part-affine")
    size = net.cfg.data.load_size
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(int(v) >= 16 for v in size)):
        raise SPGNetError(f"checkpoint {checkpoint}: data.load_size {size!r} is not [height, width] >= 16")
    return net


class PoseTransfer:
    """A checkpoint ready for photos: ``transfer(source, target)`` and ``animate(source, poses)``.

    Builds the model from the checkpoint alone; the mediapipe detector is created on first
    use. Use as a context manager (or call :meth:`close`) to free the detector.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "auto",
                 overrides: list[str] | None = None, seed: int = 0, batch_size: int = 8,
                 visibility_threshold: float = 0.5):
        if batch_size < 1:
            raise SPGNetError(f"--batch-size {batch_size}: must be at least 1")
        self.net = load_transfer_model(checkpoint, device, overrides)
        self.cfg = self.net.cfg
        self.device = next(self.net.parameters()).device
        self.size: tuple[int, int] = (int(self.cfg.data.load_size[0]), int(self.cfg.data.load_size[1]))
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.visibility_threshold = visibility_threshold
        self._detector: PoseDetector | None = None

    @property
    def detector(self) -> PoseDetector:
        if self._detector is None:
            self._detector = PoseDetector(self.visibility_threshold)
        return self._detector

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> PoseTransfer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ inputs
    def prepare(self, photo: str | os.PathLike) -> PreparedImage:
        """A photo file at the model's size, as ``spgnet prepare`` writes it; SPGNetError naming
        the file when it cannot be read or shows no person."""
        prepared = prepare_photo(load_photo(photo), self.size, self.detector)
        if prepared is None:
            raise SPGNetError(f"{photo}: no person found in this photo")
        return prepared

    def pose_from_json(self, path: str | os.PathLike, pose_size: tuple[int, int] | None = None) -> np.ndarray:
        """OpenPose JSON file -> ``(18, 2)`` in the model frame (in ``pose_size`` pixels when given)."""
        kp = read_openpose_json(path)
        return fit_keypoints(kp, pose_size or self.size, self.size)

    def target_pose(self, path: str | os.PathLike, pose_size: tuple[int, int] | None = None) -> np.ndarray:
        """``(18, 2)`` target keypoints from an OpenPose JSON file or a photo (detected)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            return self.pose_from_json(path, pose_size)
        if path.suffix.lower() in PHOTO_SUFFIXES:
            return self.prepare(path).keypoints
        raise SPGNetError(f"--target-pose {path}: unsupported suffix {path.suffix or '(none)'!r} "
                          f"(an OpenPose .json file or a {'/'.join(PHOTO_SUFFIXES)} photo)")

    def pose_sequence(self, path: str | os.PathLike,
                      pose_size: tuple[int, int] | None = None) -> tuple[np.ndarray, list[Path]]:
        """``(N, 18, 2)`` poses from a folder of JSON files / photos or a sequence JSON file."""
        path = Path(path)
        if path.is_dir():
            files = list_pose_files(path)
            json_files = [f for f in files if f.suffix.lower() == ".json"]
            fitted = {}
            if json_files:  # one crop window for all of them (module docstring)
                kps = np.stack([read_openpose_json(f) for f in json_files])
                fitted = dict(zip(json_files, fit_keypoints(kps, pose_size or self.size, self.size)))
            poses = [fitted[f] if f in fitted else self.prepare(f).keypoints for f in files]
            return np.stack(poses), files
        if not path.exists():
            raise SPGNetError(f"--poses {path}: no such file or folder")
        if path.suffix.lower() != ".json":
            raise SPGNetError(f"--poses {path}: expected a folder or a .json pose sequence")
        poses, size = read_pose_sequence(path)
        return fit_keypoints(poses, pose_size or size or self.size, self.size), [path]

    # ------------------------------------------------------------------ the model
    @contextlib.contextmanager
    def _seeded(self):
        """Fork the RNG of the model's device and seed it: the global RNG is left untouched."""
        cuda = self.device.type == "cuda"
        index = (self.device.index if self.device.index is not None else torch.cuda.current_device()) if cuda else None
        with torch.random.fork_rng(devices=[index] if cuda else []):
            torch.default_generator.manual_seed(self.seed)
            if cuda:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(self.seed)
            yield

    @torch.no_grad()
    def render(self, source: PreparedImage, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``source`` in every pose of ``targets (N, 18, 2)`` -> ``(images (N, H, W, 3) uint8,
        parsing (N, H, W) uint8)``, in batches of ``batch_size``."""
        targets = np.asarray(targets, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
        h, w = self.size
        if source.image.shape[:2] != (h, w):
            raise SPGNetError(f"source image is {source.image.shape[:2]}, the model needs {h}x{w}")
        dev, pose_cfg = self.device, self.cfg.data.pose
        # the source half of the batch, made once, with the functions complete_batch uses
        src_kp = torch.from_numpy(np.asarray(source.keypoints, dtype=np.float32))[None].to(dev)  # (1, 18, 2)
        src_parsing = torch.from_numpy(source.parsing.astype(np.int64))[None].to(dev)  # (1, H, W)
        src = {"src_image": image_to_tensor(source.image)[None].to(dev),  # (1, 3, H, W) in [-1, 1]
               "src_parsing": src_parsing, "src_parsing_onehot": one_hot(src_parsing),  # (1, 20, H, W)
               "src_kp": src_kp, "src_pose": pose_maps_from_config(src_kp, (h, w), pose_cfg)}  # (1, C, H, W)
        images, parsing = [], []
        with self._seeded():
            for start in range(0, len(targets), self.batch_size):
                tgt_kp = torch.from_numpy(targets[start : start + self.batch_size]).to(dev)  # (b, 18, 2)
                b = tgt_kp.shape[0]
                batch = {k: v.expand(b, *v.shape[1:]).contiguous() for k, v in src.items()}
                batch["tgt_kp"] = tgt_kp
                batch["tgt_pose"] = pose_maps_from_config(tgt_kp, (h, w), pose_cfg)  # (b, C, H, W)
                out = self.net.infer(batch)
                images.append(out["image"].add(1).mul(127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu())
                parsing.append(out["parsing"].to(torch.uint8).cpu())
        return torch.cat(images).numpy(), torch.cat(parsing).numpy()

    def transfer(self, source: str | os.PathLike, target: str | os.PathLike,
                 pose_size: tuple[int, int] | None = None) -> TransferResult:
        """The person of photo ``source`` in the pose of ``target`` (photo or OpenPose JSON)."""
        kp = self.target_pose(target, pose_size)
        prepared = self.prepare(source)
        images, parsing = self.render(prepared, kp[None])
        return TransferResult(images[0], parsing[0], prepared, kp)

    def animate(self, source: str | os.PathLike, poses: str | os.PathLike,
                pose_size: tuple[int, int] | None = None) -> AnimationResult:
        """The person of photo ``source`` through the pose sequence ``poses`` (folder or JSON file)."""
        kps, files = self.pose_sequence(poses, pose_size)
        prepared = self.prepare(source)
        frames, parsing = self.render(prepared, kps)
        return AnimationResult(frames, parsing, kps, files, prepared)


def save_transfer(result: TransferResult, path: str | os.PathLike, sheet: bool = False) -> None:
    """Write the result (or, with ``sheet``, :func:`transfer_sheet`) atomically."""
    save_image(transfer_sheet(result) if sheet else result.image, check_output_suffix(path, IMAGE_OUTPUTS))


__all__ = [
    "IMAGE_OUTPUTS", "ANIMATION_OUTPUTS", "POSE_SUFFIXES", "TransferResult", "AnimationResult", "PoseTransfer",
    "check_output_suffix", "check_animation_output", "transfer_sheet", "frame_strip", "write_animation", "fit_keypoints",
    "read_pose_sequence", "list_pose_files", "load_transfer_model", "save_transfer",
]
