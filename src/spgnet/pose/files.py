"""Keypoint files: the PATN annotation CSV (``name:keypoints_y:keypoints_x``, JSON int
lists, y first, -1 missing; docs/design.md §4) and OpenPose JSON
(``people[0].pose_keypoints_2d``, COCO-18 or BODY_25)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.pose.keypoints import BODY25_TO_COCO18, NUM_KEYPOINTS, check_keypoints, is_missing
from spgnet.utils.io import atomic_write_text, read_json
from spgnet.utils.parse import raise_first_problem

_HEADER_FIELDS = ("name", "keypoints_y", "keypoints_x")


def _parse_coordinate_list(text: str, field: str) -> tuple[np.ndarray | None, str | None]:
    """A JSON list of 18 numbers -> float64 array, or (None, what is wrong)."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        return None, f"{field} is not a JSON list ({exc.args[0].split(':')[0]}): {text.strip()[:60]!r}"
    if not isinstance(values, list):
        return None, f"{field} is not a JSON list: {text.strip()[:60]!r}"
    if len(values) != NUM_KEYPOINTS:
        return None, f"{field} has {len(values)} values, expected {NUM_KEYPOINTS}"
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None, f"{field} value #{i} is {json.dumps(v)}, not a finite number"
    return np.asarray(values, dtype=np.float64), None


def parse_annotation_rows(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
    """Read a PATN annotation CSV, collecting every problem instead of stopping at the first.

    Format: an optional header ``name:keypoints_y:keypoints_x`` (a header listing x before
    y is honoured), then one row per image ``name: [y0, ..., y17]: [x0, ..., x17]``.
    Returns ``({name: (18, 2) float32 (x, y)}, [(line number, message), ...])``; a joint
    with any negative coordinate is missing (-1, -1). Malformed rows are left out of the
    dict. A missing or unreadable file raises SPGNetError.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SPGNetError(f"{path}: annotation file not found") from None
    except OSError as exc:
        raise SPGNetError(f"{path}: cannot read annotation file ({exc.strerror})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]

    rows: dict[str, np.ndarray] = {}
    first_line: dict[str, int] = {}
    problems: list[tuple[int, str]] = []
    order = (1, 2)  # field indices of the y list and the x list
    seen_content = False
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append((lineno, "not UTF-8 text"))
            continue
        if not line:
            continue
        fields = [f.strip() for f in line.split(":")]
        if not seen_content:
            seen_content = True
            if fields[0] == "name":
                if len(fields) == 3 and sorted(fields) == sorted(_HEADER_FIELDS):
                    order = (fields.index("keypoints_y"), fields.index("keypoints_x"))
                else:
                    problems.append((lineno, f"unrecognised header {line[:80]!r}, expected 'name:keypoints_y:keypoints_x'"))
                continue
        if len(fields) != 3:
            problems.append((lineno, f"expected 3 ':'-separated fields (name:keypoints_y:keypoints_x), found {len(fields)}"))
            continue
        name = fields[0]
        if not name:
            problems.append((lineno, "empty image name"))
            continue
        ys, err_y = _parse_coordinate_list(fields[order[0]], "keypoints_y")
        xs, err_x = _parse_coordinate_list(fields[order[1]], "keypoints_x")
        if err_y or err_x:
            problems.append((lineno, f"'{name}': " + "; ".join(e for e in (err_y, err_x) if e)))
            continue
        kp = np.stack([xs, ys], -1).astype(np.float32)  # (18, 2) (x, y)
        kp[is_missing(kp)] = -1.0
        if name in rows:
            if not np.array_equal(rows[name], kp):
                problems.append((lineno, f"'{name}' already has different keypoints on line {first_line[name]}"))
            continue
        rows[name] = kp
        first_line[name] = lineno
    return rows, problems


def read_annotation_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PATN annotation CSV -> ``{name: (18, 2) float32 (x, y)}``, -1 missing.

    Raises SPGNetError naming the file and line of the first malformed row
    (``spgnet check`` lists them all).
    """
    rows, problems = parse_annotation_rows(path)
    raise_first_problem(path, problems)
    return rows


def write_annotation_csv(path: str | os.PathLike, annotations: dict[str, np.ndarray]) -> None:
    """Atomically write ``{name: (18, 2) (x, y)}`` as a PATN CSV (rounded ints, -1 missing)."""
    lines = [":".join(_HEADER_FIELDS)]
    for name, kp in annotations.items():
        name = str(name)
        if not name.strip() or ":" in name or "\n" in name or name != name.strip():
            raise SPGNetError(f"{path}: image name {name!r} cannot be written to an annotation CSV")
        kp = np.asarray(kp, dtype=np.float64)
        check_keypoints(kp, f"{path}: keypoints of '{name}'", ndims=(2,))
        ints = np.rint(np.where(is_missing(kp)[:, None], -1.0, kp)).astype(np.int64)
        ints[(ints < 0).any(-1)] = -1
        lines.append(f"{name}: {json.dumps(ints[:, 1].tolist())}: {json.dumps(ints[:, 0].tolist())}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def openpose_person_keypoints(person, where: str) -> np.ndarray:
    """One OpenPose ``people`` object -> keypoints ``(18, 2)`` float32 (x, y).

    Reads ``pose_keypoints_2d`` (or the older ``pose_keypoints``) as (x, y, confidence)
    triplets, COCO-18 (54 values) or BODY_25 (75 values, mapped to COCO-18). A joint with
    confidence 0 or at (0, 0) is missing (-1). ``where`` names the object in errors.
    """
    values = person.get("pose_keypoints_2d", person.get("pose_keypoints")) if isinstance(person, dict) else None
    if not isinstance(values, list):
        raise SPGNetError(f"{where} has no 'pose_keypoints_2d' list")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SPGNetError(f"{where}.pose_keypoints_2d holds non-numbers") from None
    if arr.ndim != 1 or arr.size not in (3 * NUM_KEYPOINTS, 75):
        raise SPGNetError(f"{where}.pose_keypoints_2d has {arr.size} values, expected {3 * NUM_KEYPOINTS} "
                          "(COCO-18 x, y, confidence) or 75 (BODY_25)")
    arr = arr.reshape(-1, 3)
    if len(arr) == 25:
        arr = arr[list(BODY25_TO_COCO18)]
    kp = arr[:, :2].astype(np.float32)
    kp[(arr[:, 2] <= 0) | ((arr[:, 0] == 0) & (arr[:, 1] == 0)) | is_missing(kp)] = -1.0
    return kp


def read_openpose_json(path: str | os.PathLike) -> np.ndarray:
    """Keypoints ``(18, 2)`` float32 (x, y) of ``people[0]`` in an OpenPose JSON file
    (:func:`openpose_person_keypoints`)."""
    path = Path(path)
    doc = read_json(path, "OpenPose JSON file")
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise SPGNetError(f"{path}: no 'people' list (not an OpenPose keypoint file)")
    if not people:
        raise SPGNetError(f"{path}: no person detected ('people' is empty)")
    return openpose_person_keypoints(people[0], f"{path}: people[0]")


def write_openpose_json(path: str | os.PathLike, kp) -> None:
    """Atomically write keypoints ``(18, 2)`` (x, y) as an OpenPose COCO-18 JSON file.

    Present joints get confidence 1, missing joints ``0, 0, 0``.
    """
    kp = kp.detach().cpu().numpy() if isinstance(kp, torch.Tensor) else np.asarray(kp)
    check_keypoints(kp, f"{path}: keypoints", ndims=(2,))
    missing = is_missing(kp)
    triplets = []
    for (x, y), gone in zip(kp.tolist(), missing.tolist()):
        triplets += [0.0, 0.0, 0.0] if gone else [float(x), float(y), 1.0]
    doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": triplets}]}
    atomic_write_text(path, json.dumps(doc) + "\n")
