"""Target poses from files, in the model's frame (docs/design.md §11).

A target pose comes from an OpenPose JSON file (``people[0].pose_keypoints_2d``, COCO-18
or BODY_25; :func:`spgnet.pose.read_openpose_json`) or a photo; a pose *sequence*
(``animate``) is a folder of such files, in file-name order, or one JSON file holding a
list of poses::

    {"size": [H, W],                       # optional: the frame of the coordinates
     "poses": [[[x, y], ... 18 pairs], ...]}  # COCO-18 (x, y) pixels, negative = missing

or a list of OpenPose ``people`` objects, one per frame::

    [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]   # 54 or 75 values each

(``"poses"`` entries may also be such objects).

:func:`fit_keypoints` brings coordinates of an ``h x w`` picture into the model's ``H x W``
frame with the photo geometry of :mod:`spgnet.photo.prepare`: a uniform scale to height
``H`` (``x' = (x + 0.5) s - 0.5``, pixel centres to pixel centres; the width scale is
``round(w H / h) / w``, as the photo resize), then the width padded equally on both sides
or cropped to a ``W``-wide window centred on the keypoints (for a sequence: one window
for all frames, so that motion across the frame stays motion). A joint that leaves the
picture becomes missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spgnet import SPGNetError
from spgnet.photo.prepare import PHOTO_SUFFIXES
from spgnet.pose import NUM_KEYPOINTS, check_keypoints, is_missing, openpose_person_keypoints, read_openpose_json
from spgnet.utils.io import read_json

POSE_SUFFIXES = (".json", *PHOTO_SUFFIXES)


def fit_keypoints(kp: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Keypoints ``(..., 18, 2)`` in pixels of a ``from_size = (h, w)`` image -> the model
    frame ``to_size = (H, W)`` by the photo geometry (see the module docstring): uniform scale to
    height ``H``, then pad or crop the width (one window for all leading dims).
    Missing joints, and joints that leave the picture, are -1."""
    kp = np.asarray(kp, dtype=np.float64)
    h0, w0 = (int(v) for v in from_size)
    height, width = (int(v) for v in to_size)
    missing = is_missing(kp)
    scaled_w = max(1, round(w0 * height / h0))  # the width spgnet.photo.prepare resizes a photo to
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


def _xy_pose(entry, where: str) -> np.ndarray:
    try:
        kp = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError):
        raise SPGNetError(f"{where}: must be {NUM_KEYPOINTS} [x, y] number pairs") from None
    check_keypoints(kp, f"{where}: {NUM_KEYPOINTS} [x, y] pairs", ndims=(2,))
    if not np.isfinite(kp).all():
        raise SPGNetError(f"{where}: holds a non-finite coordinate")
    kp = kp.astype(np.float32)
    kp[is_missing(kp)] = -1.0
    return kp


def read_pose_sequence(path: str | os.PathLike) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A pose-sequence JSON file (see the module docstring) -> ``(poses (N, 18, 2), size or None)``."""
    path = Path(path)
    doc = read_json(path, "pose sequence file")
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
    poses = [openpose_person_keypoints(e, f"{path}: {key}[{i}]") if isinstance(e, dict) else _xy_pose(e, f"{path}: {key}[{i}]")
             for i, e in enumerate(entries)]
    return np.stack(poses), size


def list_pose_files(folder: str | os.PathLike) -> list[Path]:
    """The OpenPose JSON files and photos of ``folder`` (not recursive), sorted by name."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in POSE_SUFFIXES)
    if not files:
        raise SPGNetError(f"{folder}: no pose files in this folder (OpenPose .json or JPEG/PNG photos)")
    return files


__all__ = ["POSE_SUFFIXES", "fit_keypoints", "list_pose_files", "read_pose_sequence"]
