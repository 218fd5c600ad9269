"""A coarse CIHP parsing from a person mask and OpenPose-18 keypoints (docs/design.md §11).

For photos that have no human parser at hand: every pixel of the person mask takes the
label of the **nearest body part**, a part being a set of capsules (segments with a
radius, distance = point-to-segment distance minus the radius, the formula of the
skeleton distance maps of docs/design.md §3 / :mod:`spgnet.pose`) and filled polygons (distance
0 inside). Pixels outside the mask are background (0). It is *coarse*: no clothing
types beyond upper-clothes / pants, no skin on legs, no neck class, sleeves count as arm.

Parts (``unit`` = shoulder width, or a stand-in when the shoulders are missing; see
:func:`_body_unit`):

* **head**: a disk around the mean of the present face joints (nose, eyes, ears), radius
  max(half the largest face-joint spread, 0.3 unit), plus the segment neck -> that centre.
  Split into **face 13** (the lower and central part: along the head's up axis at most
  1.5 eye-nose distances above the eyes, and laterally within 0.65 ear-to-ear
  distances; the neck below the chin is face too) and **hair 2** (the rest: the top and
  the sides of the head). With no nose and no eyes (a back view) the head is all hair.
* **torso -> upper-clothes 5**: the quadrilateral shoulders -> waists, where a waist is
  80 % of the way from its shoulder to its hip (pants start at the waist, above the hip
  joints). Hips that are missing are placed 1.5 unit below the shoulders (perpendicular to
  the shoulder line, away from the head); then the torso runs to them and there are no pants
  from the torso. Without both shoulders the torso is the present neck-shoulder / neck-hip
  segments.
* **pants 9**: the quadrilateral waists -> hips, and per leg the chain hip -> knee -> ankle.
* **arms**: the chains shoulder -> elbow -> wrist: the person's left -> **left-arm 14**, right
  -> **right-arm 15** (CIHP left/right are the person's, like OpenPose's). An arm within
  0.12 unit of its chain wins over the torso and pants, so arms held in front of the body
  stay arms.
* **shoes**: leg pixels beyond 90 % of the knee -> ankle segment (projected on it) become
  **left-shoe 18** / **right-shoe 19**.

A chain uses its consecutive present joints (shoulder -> wrist when the elbow is missing).
With no usable keypoint at all, the whole mask is upper-clothes. Everything is vectorised
over pixels: one ``(S, H, W)`` distance stack for the S segments.
"""

from __future__ import annotations

import numpy as np

from spgnet import SPGNetError
from spgnet.parsing import LABEL_INDEX
from spgnet.pose import check_keypoints, is_missing

FACE, HAIR = LABEL_INDEX["face"], LABEL_INDEX["hair"]
UPPER, PANTS = LABEL_INDEX["upper-clothes"], LABEL_INDEX["pants"]
LEFT_ARM, RIGHT_ARM = LABEL_INDEX["left-arm"], LABEL_INDEX["right-arm"]
LEFT_SHOE, RIGHT_SHOE = LABEL_INDEX["left-shoe"], LABEL_INDEX["right-shoe"]

# Parts of the distance stack and the CIHP label each one gives (the head is split later).
_HEAD, _TORSO, _HIPS, _L_LEG, _R_LEG, _L_ARM, _R_ARM = range(7)
_PART_LABEL = np.array([FACE, UPPER, PANTS, PANTS, PANTS, LEFT_ARM, RIGHT_ARM], dtype=np.uint8)

# OpenPose-18 joints (docs/design.md §2).
_NOSE, _NECK, _R_SH, _L_SH, _R_HIP, _L_HIP = 0, 1, 2, 5, 8, 11
_R_EYE, _L_EYE, _R_EAR, _L_EAR = 14, 15, 16, 17
_CHAINS = {_R_ARM: (2, 3, 4), _L_ARM: (5, 6, 7), _R_LEG: (8, 9, 10), _L_LEG: (11, 12, 13)}

WAIST_FRACTION = 0.8  # shoulder -> hip fraction where the pants begin
ARM_RADIUS = 0.12  # arm half-width in units: within it an arm beats torso and pants
SHOE_FRACTION = 0.9  # knee -> ankle fraction beyond which a leg pixel is shoe
HAIRLINE = 1.5  # hairline height above the eyes, in eye-nose distances
FACE_HALF_WIDTH = 0.65  # face half-width in ear-to-ear distances (ears sit a little inside the cheeks' outline)


def _body_unit(kp: np.ndarray, present: np.ndarray, mask: np.ndarray) -> float:
    """A body length scale in pixels: the shoulder width, or a stand-in from other joints.

    The largest of: shoulder width, 1.4 x hip width, 2 x neck-nose distance, a tenth of
    the mask's height, 2 px (a side view has narrow shoulders, so the others back it up).
    """
    def dist(i, j):
        return float(np.linalg.norm(kp[i] - kp[j])) if present[i] and present[j] else 0.0

    rows = np.flatnonzero(mask.any(1))
    mask_h = float(rows[-1] - rows[0] + 1) if rows.size else 0.0
    return max(dist(_R_SH, _L_SH), 1.4 * dist(_R_HIP, _L_HIP), 2.0 * dist(_NECK, _NOSE), 0.1 * mask_h, 2.0)


def _unit_vector(v: np.ndarray, fallback) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else np.asarray(fallback, dtype=np.float64)


def _segment_distances(segments: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(S, 2, 2)`` segments (a, b) in (x, y) -> ``(S, H, W)`` float32 point-to-segment distances.

    ``t = clip((p - a).(b - a) / |b - a|^2, 0, 1)``, distance ``|p - a - t (b - a)|``; a
    degenerate segment gives the distance to ``a``. Row and column terms are separated so
    the only full-size work is a few element-wise passes.
    """
    a, d = segments[:, 0].astype(np.float32), (segments[:, 1] - segments[:, 0]).astype(np.float32)
    len2 = (d * d).sum(-1)
    inv = np.where(len2 > 0, 1.0 / np.maximum(len2, 1e-12), 0.0).astype(np.float32)
    px = (np.arange(w, dtype=np.float32)[None, :] - a[:, 0:1])[:, None, :]  # (S, 1, W)
    py = (np.arange(h, dtype=np.float32)[None, :] - a[:, 1:2])[:, :, None]  # (S, H, 1)
    dx, dy = d[:, 0, None, None], d[:, 1, None, None]
    t = np.clip((px * dx + py * dy) * inv[:, None, None], 0.0, 1.0)  # (S, H, W)
    return np.hypot(px - t * dx, py - t * dy)


def _inside_triangles(triangles: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(T, 3, 2)`` triangles -> ``(H, W)`` bool, inside any of them (either orientation)."""
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    signs = []
    for k in range(3):  # the three edges of every triangle at once
        a, b = triangles[:, k], triangles[:, (k + 1) % 3]  # (T, 2)
        ex, ey = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
        signs.append(ex * (ys - a[:, 1, None, None]) - ey * (xs - a[:, 0, None, None]))  # (T, H, W) cross
    s = np.stack(signs)  # (3, T, H, W)
    return ((s >= 0).all(0) | (s <= 0).all(0)).any(0)


def _body_parts(kp: np.ndarray, present: np.ndarray, unit: float):
    """Capsules ``[(a, b, radius, part)]`` and filled quadrilaterals ``[(4 corners, part)]``."""
    capsules: list[tuple[np.ndarray, np.ndarray, float, int]] = []
    quads: list[tuple[np.ndarray, int]] = []

    face = [j for j in (_NOSE, _R_EYE, _L_EYE, _R_EAR, _L_EAR) if present[j]]
    head_centre = None
    if face:
        pts = kp[face].astype(np.float64)
        head_centre = pts.mean(0)
        spread = float(np.linalg.norm(pts[:, None] - pts[None], axis=-1).max())
        capsules.append((head_centre, head_centre, max(0.5 * spread, 0.3 * unit), _HEAD))
        if present[_NECK]:
            capsules.append((kp[_NECK], head_centre, 0.0, _HEAD))
    elif present[_NECK]:  # no face joint: assume the head sits above the neck
        head_centre = kp[_NECK] + np.array([0.0, -0.6 * unit])
        capsules.append((head_centre, head_centre, 0.3 * unit, _HEAD))
        capsules.append((kp[_NECK], head_centre, 0.0, _HEAD))

    if present[_R_SH] and present[_L_SH]:
        r_sh, l_sh = kp[_R_SH].astype(np.float64), kp[_L_SH].astype(np.float64)
        if present[_R_HIP] and present[_L_HIP]:
            r_hip, l_hip, hips_known = kp[_R_HIP], kp[_L_HIP], True
        elif present[_R_HIP] or present[_L_HIP]:  # the missing hip: translate the known one by the shoulder vector
            if present[_R_HIP]:
                r_hip = kp[_R_HIP]
                l_hip = r_hip + (l_sh - r_sh)
            else:
                l_hip = kp[_L_HIP]
                r_hip = l_hip + (r_sh - l_sh)
            hips_known = True
        else:
            across = l_sh - r_sh
            down = _unit_vector(np.array([-across[1], across[0]]), (0.0, 1.0))
            mid = 0.5 * (r_sh + l_sh)
            away = mid - head_centre if head_centre is not None else np.array([0.0, 1.0])
            if float(down @ away) < 0:
                down = -down
            r_hip, l_hip, hips_known = r_sh + 1.5 * unit * down, l_sh + 1.5 * unit * down, False
        r_hip, l_hip = np.asarray(r_hip, np.float64), np.asarray(l_hip, np.float64)
        if hips_known:
            r_waist = r_sh + WAIST_FRACTION * (r_hip - r_sh)
            l_waist = l_sh + WAIST_FRACTION * (l_hip - l_sh)
            quads.append((np.stack([r_waist, l_waist, l_hip, r_hip]), _HIPS))
        else:
            r_waist, l_waist = r_hip, l_hip
        quads.append((np.stack([r_sh, l_sh, l_waist, r_waist]), _TORSO))
    else:
        for a, b in ((_NECK, _R_SH), (_NECK, _L_SH), (_NECK, _R_HIP), (_NECK, _L_HIP), (_R_HIP, _L_HIP)):
            if present[a] and present[b]:
                capsules.append((kp[a], kp[b], 0.0, _TORSO))

    for part, chain in _CHAINS.items():
        joints = [j for j in chain if present[j]]
        for a, b in zip(joints[:-1], joints[1:]):
            capsules.append((kp[a], kp[b], 0.0, part))

    for corners, part in quads:  # a filled quad's edges give its distance outside it
        for k in range(4):
            capsules.append((corners[k], corners[(k + 1) % 4], 0.0, part))
    return capsules, quads


def _split_head(labels: np.ndarray, kp: np.ndarray, present: np.ndarray, unit: float) -> None:
    """Relabel the head pixels (``FACE``) of ``labels`` in place into face 13 and hair 2."""
    head = labels == FACE
    if not head.any():
        return
    eyes = [j for j in (_R_EYE, _L_EYE) if present[j]]
    if not eyes and not present[_NOSE]:
        labels[head] = HAIR  # back view: only hair
        return
    eye = kp[eyes].astype(np.float64).mean(0) if eyes else kp[_NOSE].astype(np.float64)
    face_centre = kp[[j for j in (_NOSE, _R_EYE, _L_EYE) if present[j]]].astype(np.float64).mean(0)
    if present[_NECK]:
        up = _unit_vector(face_centre - kp[_NECK], (0.0, -1.0))
    elif len(eyes) == 2:
        across = kp[_L_EYE] - kp[_R_EYE]
        up = _unit_vector(np.array([across[1], -across[0]]), (0.0, -1.0))
        if present[_NOSE] and float(up @ (eye - kp[_NOSE])) < 0:
            up = -up
    else:
        up = np.array([0.0, -1.0])
    side = np.array([-up[1], up[0]])
    eye_nose = float(np.linalg.norm(kp[_NOSE] - eye)) if present[_NOSE] and eyes else 0.0
    step = max(eye_nose, 0.12 * unit)
    ears = float(np.linalg.norm(kp[_R_EAR] - kp[_L_EAR])) if present[_R_EAR] and present[_L_EAR] else 0.0
    half_width = max(FACE_HALF_WIDTH * ears, 1.2 * step)
    ys, xs = np.nonzero(head)
    rel_x, rel_y = xs - eye[0], ys - eye[1]
    along = rel_x * up[0] + rel_y * up[1]
    lateral = rel_x * side[0] + rel_y * side[1]
    is_face = (along <= HAIRLINE * step) & (np.abs(lateral) <= half_width)
    labels[ys, xs] = np.where(is_face, FACE, HAIR)


def coarse_parsing(mask: np.ndarray, kp: np.ndarray) -> np.ndarray:
    """Coarse CIHP labels ``(H, W)`` uint8 from a person ``mask (H, W)`` bool and ``kp (18, 2)`` (x, y).

    Every mask pixel gets a body-part label (see the module docstring), every other pixel
    0. Joints may lie off the image; missing joints are negative (docs/design.md §2).
    """
    mask = np.asarray(mask).astype(bool)
    kp = np.asarray(kp, dtype=np.float64)
    if mask.ndim != 2:
        raise SPGNetError(f"coarse_parsing needs an (H, W) mask, got shape {mask.shape}")
    check_keypoints(kp, "coarse_parsing: keypoints", ndims=(2,))
    h, w = mask.shape
    labels = np.zeros((h, w), np.uint8)
    if not mask.any():
        return labels
    present = ~is_missing(kp)
    unit = _body_unit(kp, present, mask)
    capsules, quads = _body_parts(kp, present, unit)
    if not capsules:
        labels[mask] = UPPER
        return labels

    capsules.sort(key=lambda c: c[3])
    parts = np.array([c[3] for c in capsules])
    segments = np.array([[c[0], c[1]] for c in capsules], dtype=np.float64)  # (S, 2, 2)
    radius = np.array([c[2] for c in capsules], dtype=np.float32)[:, None, None]
    seg_dist = np.maximum(_segment_distances(segments, h, w) - radius, 0.0)  # (S, H, W)
    part_ids, first = np.unique(parts, return_index=True)
    dist = np.minimum.reduceat(seg_dist, first, axis=0)  # (P, H, W), P = parts present
    for corners, part in quads:
        inside = _inside_triangles(np.stack([corners[[0, 1, 2]], corners[[0, 2, 3]]]).astype(np.float32), h, w)
        dist[np.searchsorted(part_ids, part)][inside] = 0.0
    nearest = part_ids[dist.argmin(0)]  # (H, W) part id

    arm_rows = np.isin(part_ids, (_L_ARM, _R_ARM))
    if arm_rows.any():
        arm_dist = dist[arm_rows]
        near_arm = (arm_dist.min(0) <= ARM_RADIUS * unit) & np.isin(nearest, (_TORSO, _HIPS, _L_LEG, _R_LEG))
        nearest = np.where(near_arm, part_ids[arm_rows][arm_dist.argmin(0)], nearest)

    labels_all = _PART_LABEL[nearest]
    for part, shoe, (_, knee, ankle) in ((_L_LEG, LEFT_SHOE, _CHAINS[_L_LEG]), (_R_LEG, RIGHT_SHOE, _CHAINS[_R_LEG])):
        if present[knee] and present[ankle]:
            shin = kp[ankle] - kp[knee]
            length2 = float(shin @ shin)
            if length2 > 0:
                along = ((np.arange(w)[None, :] - kp[knee, 0]) * shin[0] + (np.arange(h)[:, None] - kp[knee, 1]) * shin[1]) / length2
                labels_all = np.where((nearest == part) & (along >= SHOE_FRACTION), np.uint8(shoe), labels_all)
    labels[mask] = labels_all[mask]
    _split_head(labels, kp, present, unit)
    return labels


__all__ = ["coarse_parsing"]
