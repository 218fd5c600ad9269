"""Pose representation (paper Eq. 2-3, DESIGN §3) and keypoint files.

Keypoints are OpenPose COCO-18 ``(..., 18, 2)`` arrays or tensors of **(x, y)** float
pixel coordinates (pixel centres at integers); a joint is *missing* when a coordinate
is negative (files use -1) or not finite. Keypoints off the image are still valid.

Pose maps, all ``(B, C, H, W)`` float32 tensors on the keypoints' device:

* ``keypoint_heatmaps`` (18 ch): ``exp(-((x-x0)^2 + (y-y0)^2) / (2 sigma^2))``, sigma = 6
  (PATN); a missing joint gives a zero channel. Computed as the outer product of two
  1-D Gaussians, which is the same function and avoids an exp per pixel.
* ``keypoint_disks`` (18 ch): 1 where the distance to the joint is <= radius (the
  official SPGNet release's binary pose maps).
* ``skeleton_distance_maps`` (12 ch, paper Eq. 2-3): ``M_m(p) = exp(kappa * d(p, [a_m, b_m]))``
  with ``d`` the exact point-to-segment distance, kappa = -0.1, for the 12 :data:`LIMBS`;
  a limb with a missing endpoint gives a zero channel.
* ``pose_maps``: heat maps then distance maps (30 ch, paper), or disks (18 ch).

Files: the PATN annotation CSV (``name:keypoints_y:keypoints_x``, JSON int lists, y
first, -1 missing) and OpenPose JSON (``people[0].pose_keypoints_2d``). Drawing: the
OpenPose colour scheme.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.io import atomic_write_text

NUM_KEYPOINTS = 18

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r-shoulder", "r-elbow", "r-wrist", "l-shoulder", "l-elbow", "l-wrist",
    "r-hip", "r-knee", "r-ankle", "l-hip", "l-knee", "l-ankle", "r-eye", "l-eye", "r-ear", "l-ear",
)

# The 12 body limbs of the distance maps (DESIGN §3), in channel order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
)

# The 17 edges OpenPose (COCO-18) and the pose-transfer repos draw: the 12 limbs plus the face.
SKELETON_EDGES: tuple[tuple[int, int], ...] = LIMBS + ((1, 0), (0, 14), (14, 16), (0, 15), (15, 17))

# Horizontal mirror: joint j of the mirrored person is joint FLIP_INDEX[j] of the original.
FLIP_INDEX: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# OpenPose's 18 drawing colours (RGB): edge i and joint i use colour i.
OPENPOSE_COLORS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    dtype=np.uint8,
)

# BODY_25 -> COCO-18 (BODY_25 adds mid-hip at 8 and six foot points at 19-24).
_BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

_LIMB_A = torch.tensor([a for a, _ in LIMBS])
_LIMB_B = torch.tensor([b for _, b in LIMBS])

# Elements per intermediate buffer of the chunked CPU distance maps: a few of them fit
# in L2, so the ~9 element-wise passes run from cache instead of main memory.
_CPU_CHUNK_ELEMENTS = 1 << 18


# --------------------------------------------------------------------------- keypoint helpers


def is_missing(kp: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(..., 18, 2)`` -> ``(..., 18)`` bool: a coordinate is negative or not finite."""
    if isinstance(kp, torch.Tensor):
        return ~(torch.isfinite(kp) & (kp >= 0)).all(-1)
    kp = np.asarray(kp)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(kp) & (kp >= 0)).all(-1)


def _check_kp_shape(kp, what: str = "keypoints") -> None:
    if kp.ndim < 2 or tuple(kp.shape[-2:]) != (NUM_KEYPOINTS, 2):
        raise SPGNetError(f"{what} must have shape (..., {NUM_KEYPOINTS}, 2) (x, y), got {tuple(kp.shape)}")


def transform_keypoints(
    kp: np.ndarray | torch.Tensor,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    offset_xy: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray | torch.Tensor:
    """Resize/shift keypoints ``(..., 18, 2)``: ``x' = (x + 0.5) * sx - 0.5 + ox`` (same for y).

    The ``+0.5 / -0.5`` maps pixel centres to pixel centres, as image resizing does
    (``align_corners=False``). Missing joints stay at -1. A valid joint that lands
    within half a pixel left of / above the image is clamped to 0 (it is still on the
    first pixel; a negative value would read as missing); one further out cannot be
    represented and becomes missing (-1). Returns float32 of the input's kind.
    """
    if not isinstance(kp, torch.Tensor):
        kp = np.asarray(kp, dtype=np.float32)
    _check_kp_shape(kp)
    missing = is_missing(kp)
    if isinstance(kp, torch.Tensor):
        kp = kp.float()
        scale = torch.tensor(scale_xy, dtype=torch.float32, device=kp.device)
        offset = torch.tensor(offset_xy, dtype=torch.float32, device=kp.device)
        out = (kp + 0.5) * scale - 0.5 + offset
        out = torch.where((out < 0) & (out >= -0.5), torch.zeros_like(out), out)
        gone = missing | (out < 0).any(-1)
        return torch.where(gone[..., None], torch.full_like(out, -1.0), out)
    kp = np.asarray(kp, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        out = (kp + np.float32(0.5)) * np.asarray(scale_xy, np.float32) - np.float32(0.5) + np.asarray(offset_xy, np.float32)
        out = np.where((out < 0) & (out >= -0.5), np.float32(0), out)
        gone = missing | (out < 0).any(-1)
    return np.where(gone[..., None], np.float32(-1), out).astype(np.float32)


def flip_keypoints(kp: np.ndarray | torch.Tensor, width: int) -> np.ndarray | torch.Tensor:
    """Keypoints of the horizontally mirrored image of width ``width``.

    ``x -> width - 1 - x`` and left/right joints swap (:data:`FLIP_INDEX`); missing joints
    stay -1. A joint right of the image (x > width - 1) lands at negative x and so
    becomes missing (-1). Returns float32 of the input's kind.
    """
    if not isinstance(kp, torch.Tensor):
        kp = np.asarray(kp, dtype=np.float32)
    _check_kp_shape(kp)
    if isinstance(kp, torch.Tensor):
        kp = kp.float()[..., list(FLIP_INDEX), :]
        out = torch.stack([(width - 1) - kp[..., 0], kp[..., 1]], -1)
        gone = is_missing(kp) | is_missing(out)
        return torch.where(gone[..., None], torch.full_like(out, -1.0), out)
    kp = np.asarray(kp, dtype=np.float32)[..., list(FLIP_INDEX), :]
    out = np.stack([np.float32(width - 1) - kp[..., 0], kp[..., 1]], -1)
    gone = is_missing(kp) | is_missing(out)
    return np.where(gone[..., None], np.float32(-1), out).astype(np.float32)


# --------------------------------------------------------------------------- pose maps


def _prepare(kp, size) -> tuple[torch.Tensor, int, int]:
    """Keypoints as a ``(B, 18, 2)`` float32 tensor (numpy -> CPU) and the checked ``(H, W)``."""
    if isinstance(kp, torch.Tensor):
        kp = kp.detach().to(torch.float32)
    else:
        kp = torch.from_numpy(np.array(kp, dtype=np.float32))
    _check_kp_shape(kp)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3:
        raise SPGNetError(f"keypoints must be (18, 2) or (B, 18, 2), got {tuple(kp.shape)}")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SPGNetError(f"pose map size must be (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise SPGNetError(f"pose map size must be positive, got {(h, w)}")
    # canonical -1 for missing joints, so NaN/inf never reach the maps
    kp = torch.where(is_missing(kp)[..., None], torch.full_like(kp, -1.0), kp)
    return kp, h, w


def _grids(kp: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.arange(w, dtype=torch.float32, device=kp.device),  # x of each column
        torch.arange(h, dtype=torch.float32, device=kp.device),  # y of each row
    )


def _heatmaps_into(kp: torch.Tensor, out: torch.Tensor, sigma: float) -> None:
    """Write the ``(B, 18, H, W)`` heat maps of ``kp (B, 18, 2)`` into ``out``."""
    if not sigma > 0:
        raise SPGNetError(f"heat-map sigma must be > 0, got {sigma}")
    h, w = out.shape[-2:]
    xs, ys = _grids(kp, h, w)
    c = -0.5 / (float(sigma) ** 2)
    present = (~is_missing(kp)).float()[..., None]  # (B, 18, 1)
    gx = torch.exp((xs - kp[..., 0:1]).square() * c) * present  # (B, 18, W)
    gy = torch.exp((ys - kp[..., 1:2]).square() * c)  # (B, 18, H)
    # exp(-(dx^2 + dy^2) / 2s^2) = exp(-dy^2 / 2s^2) * exp(-dx^2 / 2s^2)
    torch.mul(gy[..., :, None], gx[..., None, :], out=out)


def keypoint_heatmaps(kp, size: tuple[int, int], sigma: float = 6.0) -> torch.Tensor:
    """Gaussian heat maps ``(B, 18, H, W)`` of keypoints ``(18, 2)`` / ``(B, 18, 2)`` (x, y)."""
    kp, h, w = _prepare(kp, size)
    out = torch.empty(kp.shape[0], NUM_KEYPOINTS, h, w, device=kp.device)
    _heatmaps_into(kp, out, sigma)
    return out


def keypoint_disks(kp, size: tuple[int, int], radius: float = 8.0) -> torch.Tensor:
    """Binary disks ``(B, 18, H, W)``: 1 where the pixel is within ``radius`` of the joint."""
    kp, h, w = _prepare(kp, size)
    if not radius >= 0:
        raise SPGNetError(f"disk radius must be >= 0, got {radius}")
    xs, ys = _grids(kp, h, w)
    missing = is_missing(kp)[..., None]  # (B, 18, 1)
    dx2 = torch.where(missing, torch.full_like(xs, math.inf), (xs - kp[..., 0:1]).square())  # (B, 18, W)
    dy2 = (ys - kp[..., 1:2]).square()  # (B, 18, H)
    out = torch.empty(kp.shape[0], NUM_KEYPOINTS, h, w, device=kp.device)
    torch.add(dy2[..., :, None], dx2[..., None, :], out=out)
    return out.le_(float(radius) ** 2)  # in place: 1.0 inside, 0.0 outside


def _distance_maps_into(kp: torch.Tensor, out: torch.Tensor, kappa: float) -> None:
    """Write the ``(B, 12, H, W)`` skeleton distance maps of ``kp (B, 18, 2)`` into ``out``.

    In the frame of limb ``a -> b`` (unit direction ``e``, normal ``n``, length ``L``) a
    pixel ``p`` has along-coordinate ``s = (p - a).e`` and across-coordinate
    ``q = (p - a).n``; its distance to the segment is ``sqrt(r^2 + q^2)`` with
    ``r = min(s, 0) + max(s - L, 0)`` (how far ``s`` lies outside ``[0, L]``). ``s`` and
    ``q`` are each a column term plus a row term, computed once per limb. A degenerate
    limb (a == b) takes ``e = (1, 0)``, ``L = 0``, which gives the distance to ``a``.
    On CPU the per-pixel passes run over row chunks held in reused buffers, which keeps
    them in cache.
    """
    b_, n_limbs, h, w = out.shape
    xs, ys = _grids(kp, h, w)
    a, b = kp[:, _LIMB_A.to(kp.device)], kp[:, _LIMB_B.to(kp.device)]  # (B, 12, 2)
    d = b - a
    length = d.norm(dim=-1)  # (B, 12)
    unit_x = torch.where(length > 0, d[..., 0] / length.clamp_min(1e-30), torch.ones_like(length))
    unit_y = torch.where(length > 0, d[..., 1] / length.clamp_min(1e-30), torch.zeros_like(length))
    px = (xs - a[..., 0:1])[:, :, None, :]  # (B, 12, 1, W)  x - ax
    py = (ys - a[..., 1:2])[:, :, :, None]  # (B, 12, H, 1)  y - ay
    ux, uy = unit_x[..., None, None], unit_y[..., None, None]  # (B, 12, 1, 1)
    s_col, s_row = px * ux, py * uy  # s = s_col + s_row
    q_col, q_row = px * -uy, py * ux  # q = q_col + q_row
    length = length[..., None, None]
    # exp(bias + kappa * dist) with bias -inf zeroes the limbs with a missing endpoint
    limb_missing = is_missing(a) | is_missing(b)
    bias = torch.where(limb_missing, -math.inf, 0.0).to(torch.float32)[..., None, None]  # (B, 12, 1, 1)

    if kp.device.type == "cpu" and b_ * n_limbs * w > 0:
        rows = max(1, min(h, _CPU_CHUNK_ELEMENTS // (b_ * n_limbs * w)))
    else:
        rows = h
    buf_s, buf_c, buf_q = (torch.empty(b_, n_limbs, rows, w, device=kp.device) for _ in range(3))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        s, c, q = buf_s[:, :, : r1 - r0], buf_c[:, :, : r1 - r0], buf_q[:, :, : r1 - r0]
        torch.add(s_col, s_row[:, :, r0:r1], out=s)
        torch.clamp(s, max=0.0, out=c)
        s.sub_(length).clamp_(min=0.0).add_(c)  # r = min(s, 0) + max(s - L, 0)
        torch.add(q_col, q_row[:, :, r0:r1], out=q)
        s.mul_(s).addcmul_(q, q).sqrt_()  # distance to the segment
        o = out[:, :, r0:r1]
        torch.add(bias, s, alpha=float(kappa), out=o)
        o.exp_()


def skeleton_distance_maps(kp, size: tuple[int, int], kappa: float = -0.1) -> torch.Tensor:
    """Skeleton distance maps ``(B, 12, H, W)`` (paper Eq. 2-3), ``exp(kappa * distance)``."""
    kp, h, w = _prepare(kp, size)
    out = torch.empty(kp.shape[0], len(LIMBS), h, w, device=kp.device)
    _distance_maps_into(kp, out, kappa)
    return out


POSE_KINDS = ("heatmap+distance", "disk")


def pose_channels(kind: str) -> int:
    """Number of pose-map channels of ``kind``: 30 (heat maps + distance maps) or 18 (disks)."""
    if kind == "heatmap+distance":
        return NUM_KEYPOINTS + len(LIMBS)
    if kind == "disk":
        return NUM_KEYPOINTS
    raise SPGNetError(f"unknown pose map kind '{kind}' (choose from {', '.join(POSE_KINDS)})")


def pose_maps(
    kp,
    size: tuple[int, int],
    kind: str = "heatmap+distance",
    sigma: float = 6.0,
    kappa: float = -0.1,
    radius: float = 8.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pose tensor of keypoints ``(18, 2)`` / ``(B, 18, 2)`` (x, y) at ``size = (H, W)``.

    ``kind="heatmap+distance"``: ``(B, 30, H, W)``, the 18 heat maps then the 12
    distance maps (paper). ``kind="disk"``: ``(B, 18, H, W)`` binary disks (official
    preset). float32, on the keypoints' device (numpy input -> CPU); not differentiable.
    ``out``: an existing float32 ``(B, 30, H, W)`` tensor to write into (heat+distance
    kind); reusing one skips allocating and page-faulting a fresh ~170 MB tensor per
    batch of 32 at 256x176, which costs about as much as computing the maps on a CPU.
    """
    channels = pose_channels(kind)
    if kind == "disk":
        return keypoint_disks(kp, size, radius)
    kp, h, w = _prepare(kp, size)
    shape = (kp.shape[0], channels, h, w)
    if out is None:
        out = torch.empty(shape, device=kp.device)
    elif tuple(out.shape) != shape or out.dtype != torch.float32 or out.device != kp.device:
        raise SPGNetError(f"pose_maps out= must be float32 {shape} on {kp.device}, "
                          f"got {out.dtype} {tuple(out.shape)} on {out.device}")
    _heatmaps_into(kp, out[:, :NUM_KEYPOINTS], sigma)
    _distance_maps_into(kp, out[:, NUM_KEYPOINTS:], kappa)
    return out


def pose_maps_from_config(kp, size: tuple[int, int], cfg) -> torch.Tensor:
    """:func:`pose_maps` with the settings of a :class:`spgnet.config.PoseConfig`."""
    return pose_maps(kp, size, kind=cfg.kind, sigma=cfg.sigma, kappa=cfg.kappa, radius=cfg.disk_radius)


# --------------------------------------------------------------------------- PATN annotation CSV

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
    if problems:
        line, message = problems[0]
        more = f" (and {len(problems) - 1} more problems; run `spgnet check` for the full list)" if len(problems) > 1 else ""
        raise SPGNetError(f"{path} line {line}: {message}{more}")
    return rows


def write_annotation_csv(path: str | os.PathLike, annotations: dict[str, np.ndarray]) -> None:
    """Atomically write ``{name: (18, 2) (x, y)}`` as a PATN CSV (rounded ints, -1 missing)."""
    lines = [":".join(_HEADER_FIELDS)]
    for name, kp in annotations.items():
        name = str(name)
        if not name.strip() or ":" in name or "\n" in name or name != name.strip():
            raise SPGNetError(f"{path}: image name {name!r} cannot be written to an annotation CSV")
        kp = np.asarray(kp, dtype=np.float64)
        if kp.shape != (NUM_KEYPOINTS, 2):
            raise SPGNetError(f"{path}: keypoints of '{name}' must be ({NUM_KEYPOINTS}, 2), got {kp.shape}")
        ints = np.rint(np.where(is_missing(kp)[:, None], -1.0, kp)).astype(np.int64)
        ints[(ints < 0).any(-1)] = -1
        lines.append(f"{name}: {json.dumps(ints[:, 1].tolist())}: {json.dumps(ints[:, 0].tolist())}")
    atomic_write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- OpenPose JSON


def read_openpose_json(path: str | os.PathLike) -> np.ndarray:
    """Keypoints ``(18, 2)`` float32 (x, y) of ``people[0]`` in an OpenPose JSON file.

    Reads ``pose_keypoints_2d`` (or the older ``pose_keypoints``) as (x, y, confidence)
    triplets, COCO-18 (54 values) or BODY_25 (75 values, mapped to COCO-18). A joint with
    confidence 0 or at (0, 0) is missing (-1).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SPGNetError(f"{path}: OpenPose JSON file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SPGNetError(f"{path}: not valid JSON ({exc})") from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise SPGNetError(f"{path}: no 'people' list (not an OpenPose keypoint file)")
    if not people:
        raise SPGNetError(f"{path}: no person detected ('people' is empty)")
    person = people[0]
    values = None
    if isinstance(person, dict):
        values = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
    if not isinstance(values, list):
        raise SPGNetError(f"{path}: people[0] has no 'pose_keypoints_2d' list")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SPGNetError(f"{path}: people[0].pose_keypoints_2d holds non-numbers") from None
    if arr.ndim != 1 or arr.size not in (3 * NUM_KEYPOINTS, 75):
        raise SPGNetError(
            f"{path}: people[0].pose_keypoints_2d has {arr.size} values, expected {3 * NUM_KEYPOINTS} "
            "(COCO-18 x, y, confidence) or 75 (BODY_25)"
        )
    arr = arr.reshape(-1, 3)
    if len(arr) == 25:
        arr = arr[list(_BODY25_TO_COCO18)]
    kp = arr[:, :2].astype(np.float32)
    missing = (arr[:, 2] <= 0) | ((arr[:, 0] == 0) & (arr[:, 1] == 0)) | is_missing(kp)
    kp[missing] = -1.0
    return kp


def write_openpose_json(path: str | os.PathLike, kp) -> None:
    """Atomically write keypoints ``(18, 2)`` (x, y) as an OpenPose COCO-18 JSON file.

    Present joints get confidence 1, missing joints ``0, 0, 0``.
    """
    kp = kp.detach().cpu().numpy() if isinstance(kp, torch.Tensor) else np.asarray(kp)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise SPGNetError(f"{path}: keypoints must be ({NUM_KEYPOINTS}, 2), got {kp.shape}")
    missing = is_missing(kp)
    triplets = []
    for (x, y), gone in zip(kp.tolist(), missing.tolist()):
        triplets += [0.0, 0.0, 0.0] if gone else [float(x), float(y), 1.0]
    doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": triplets}]}
    atomic_write_text(path, json.dumps(doc) + "\n")


# --------------------------------------------------------------------------- drawing


def _default_widths(h: int, w: int, radius, thickness) -> tuple[int, int]:
    scale = max(h, w) / 256.0
    r = max(1, round(4 * scale)) if radius is None else int(radius)
    t = max(1, round(3 * scale)) if thickness is None else int(thickness)
    return r, t


def draw_skeleton(image: np.ndarray, kp, radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """A copy of ``image (H, W, 3) uint8`` with the OpenPose skeleton of ``kp (18, 2)`` drawn on it.

    Edges (:data:`SKELETON_EDGES`) are lines of ``thickness`` px, joints dots of
    ``radius`` px, in the OpenPose colours; both default to sizes scaled with the image
    (4 and 3 px at 256 px). Missing joints and their edges are skipped.
    """
    from PIL import Image, ImageDraw

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SPGNetError(f"draw_skeleton needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    kp = kp.detach().cpu().numpy() if isinstance(kp, torch.Tensor) else np.asarray(kp, dtype=np.float64)
    _check_kp_shape(kp)
    if kp.ndim != 2:
        raise SPGNetError(f"draw_skeleton draws one person: keypoints must be (18, 2), got {kp.shape}")
    h, w = image.shape[:2]
    r, t = _default_widths(h, w, radius, thickness)
    present = ~is_missing(kp)
    canvas = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(canvas)
    for i, (a, b) in enumerate(SKELETON_EDGES):
        if present[a] and present[b]:
            draw.line([tuple(kp[a]), tuple(kp[b])], fill=tuple(int(c) for c in OPENPOSE_COLORS[i]), width=t)
    for j in np.flatnonzero(present):
        x, y = kp[j]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in OPENPOSE_COLORS[j]))
    return np.asarray(canvas)


def render_pose_image(kp, size: tuple[int, int], radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """The OpenPose skeleton of ``kp (18, 2)`` on a black ``(H, W, 3)`` uint8 canvas."""
    h, w = (int(v) for v in size)
    return draw_skeleton(np.zeros((h, w, 3), np.uint8), kp, radius, thickness)
