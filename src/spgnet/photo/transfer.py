"""Your own photo in a new pose, and through a pose sequence (docs/design.md §11): both stages of
SPGNet (stage-1 target parsing, stage-2 generator) run on one photo from a checkpoint alone.

**Source.** The photo is prepared exactly as ``spgnet prepare`` prepares a dataset
(:func:`spgnet.photo.prepare.prepare_photo`): mediapipe keypoints and person masks, one
person chosen (``person``: the largest by default; ``target_person`` for target photos),
scale to the checkpoint's ``data.load_size`` height ``H``, pad or crop the width to ``W``
around the person, coarse CIHP parsing (or a learned parser: ``parser="segformer"``; learned
keypoints: ``keypoints="vitpose"``). The checkpoint's ``data.crop`` does not apply (it describes
its dataset's disk images, not photos).

**Target pose**, in the model's ``H x W`` frame: a photo (detected and brought to
``H x W`` with the same geometry as the source), an OpenPose JSON file, or for
``animate`` a pose sequence; file formats and the frame geometry are in
:mod:`spgnet.photo.pose_sequence`. OpenPose coordinates are taken as pixels of an
``H x W`` image (the model's load size) unless a ``pose_size = (h, w)`` is given (an
explicit ``pose_size`` overrides a sequence file's ``"size"``).

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
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.parsing import colorize, one_hot
from spgnet.photo.animation import IMAGE_OUTPUTS, check_output_suffix
from spgnet.photo.detect import PoseDetector, parse_person
from spgnet.photo.learned_keypoints import load_keypoint_model
from spgnet.photo.learned_parsing import load_parser
from spgnet.photo.pose_sequence import fit_keypoints, list_pose_files, read_pose_sequence
from spgnet.photo.prepare import DEFAULT_VISIBILITY, PHOTO_SUFFIXES, PreparedImage, load_photo, prepare_photo
from spgnet.pose import NUM_KEYPOINTS, pose_maps_from_config, read_openpose_json, render_pose_image
from spgnet.utils.device import resolve_device
from spgnet.utils.io import image_to_tensor, save_image


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


def transfer_sheet(result: TransferResult) -> np.ndarray:
    """``(H, 4 W, 3)`` uint8: source | target pose (skeleton) | predicted parsing (colourised) | result."""
    h, w = result.image.shape[:2]
    tiles = [result.source.image, render_pose_image(result.target, (h, w)), colorize(result.parsing), result.image]
    return np.concatenate(tiles, axis=1)


def load_transfer_model(checkpoint: str | os.PathLike, device: str | torch.device = "auto",
                        overrides: list[str] | None = None):
    """:func:`spgnet.pipeline.load_pipeline` for photos (``device``: auto, cpu, cuda, cuda:N): any checkpoint problem (missing,
    not an spgnet checkpoint, config and weights that do not fit, a flow photos cannot
    have) is one SPGNetError naming the checkpoint."""
    from spgnet.pipeline import load_pipeline

    device = resolve_device(device, what="--device")
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
                 visibility_threshold: float = DEFAULT_VISIBILITY, person: str | int = "largest",
                 target_person: str | int = "largest", parser: str = "coarse",
                 parser_weights: str | os.PathLike | None = None, keypoints: str = "blazepose",
                 keypoint_weights: str | os.PathLike | None = None):
        if batch_size < 1:
            raise SPGNetError(f"--batch-size {batch_size}: must be at least 1")
        self.person = parse_person(person)
        self.target_person = parse_person(target_person)
        self.net = load_transfer_model(checkpoint, device, overrides)
        self.cfg = self.net.cfg
        self.device = next(self.net.parameters()).device
        self.size: tuple[int, int] = (int(self.cfg.data.load_size[0]), int(self.cfg.data.load_size[1]))
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.visibility_threshold = visibility_threshold
        self._detector: PoseDetector | None = None
        self.parser = load_parser(parser, parser_weights, str(self.device))  # None: the coarse parsing
        self.keypoint_model = load_keypoint_model(keypoints, keypoint_weights, str(self.device))  # None: BlazePose's
        self.notes: list[str] = []  # one line per photo in which several people were found

    @property
    def detector(self) -> PoseDetector:
        if self._detector is None:
            self._detector = PoseDetector(self.visibility_threshold, keypoint_model=self.keypoint_model)
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
    def prepare(self, photo: str | os.PathLike, person: str | int | None = None) -> PreparedImage:
        """A photo file at the model's size, as ``spgnet prepare`` writes it (the ``person``
        chosen, by default this object's ``person``); SPGNetError naming the file when it
        cannot be read or shows no person."""
        return self.prepare_array(load_photo(photo), str(photo), person)

    def prepare_array(self, photo: np.ndarray, name: str = "photo", person: str | int | None = None) -> PreparedImage:
        """:meth:`prepare` for a decoded ``(h, w, 3)`` uint8 RGB photo."""
        prepared = prepare_photo(photo, self.size, self.detector, name=name,
                                 person=self.person if person is None else parse_person(person), parser=self.parser)
        if prepared is None:
            raise SPGNetError(f"{name}: no person found in this photo")
        if prepared.note:
            self.notes.append(prepared.note)
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
            return self.prepare(path, self.target_person).keypoints
        raise SPGNetError(f"--target-pose {path}: unsupported suffix {path.suffix or '(none)'!r} "
                          "(an OpenPose .json file or a photo in a format Pillow reads: .jpg, .png, .webp, ...)")

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
            poses = [fitted[f] if f in fitted else self.prepare(f, self.target_person).keypoints for f in files]
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
    "TransferResult", "AnimationResult", "PoseTransfer", "transfer_sheet", "load_transfer_model", "save_transfer",
]
