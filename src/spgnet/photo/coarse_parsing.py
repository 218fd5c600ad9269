"""A coarse CIHP parsing from a person mask and OpenPose-18 keypoints (docs/design.md §11),
refined by the photo's colours when the photo is given.

For photos that have no learned human parser at hand (see :mod:`spgnet.photo.learned_parsing`):
every pixel of the person mask takes the label of the **nearest body part**, a part being
a set of capsules (segments with a radius, distance = point-to-segment distance minus the
radius, the formula of the skeleton distance maps of docs/design.md §3 / :mod:`spgnet.pose`)
and filled polygons (distance 0 inside). Pixels outside the mask are background (0).

Parts (``unit`` = shoulder width, or a stand-in when the shoulders are missing; see
:func:`_body_unit`; "up" is the body's up, from the hips to the shoulders):

* **torso -> upper-clothes 5**: the quadrilateral from the shoulder line, raised by
  :data:`COLLAR` units (the collar and the tops of the shoulders lie above the shoulder
  joints), down to the **hip line** (the waist: clothes of the upper body reach the hip
  joints). With the photo the waist moves to where the colours of the top and the bottom
  garment meet (from 0.3 torso lengths above the hip line to 0.4 below: long tops,
  high-waisted trousers). Hips that are missing are placed 1.5 unit below the shoulders; then the torso
  runs to them and there are no legs (a half-body photo).
* **legs -> pants 9**: per leg the chain hip -> knee -> ankle. A knee or ankle that is
  missing while its hip is known is **extrapolated** (knee halfway to a known ankle, or
  along the torso's axis by :data:`THIGH` / :data:`SHIN` torso lengths), so thighs are never
  left to the arms. Leg pixels beyond 90 % of the knee -> ankle segment become
  **left-shoe 18** / **right-shoe 19** (only with a detected ankle); with the photo, those
  nearer the shin's colour than the colour below the ankle go back to the leg, and when the
  two colours are too close to tell, those above the ankle that have the shin's colour.
* **arms**: the chains shoulder -> elbow -> wrist, and the hand beyond the wrist
  (:data:`HAND` forearm lengths on along the forearm): the person's left -> **left-arm 14**,
  right -> **right-arm 15** (CIHP left/right are the person's). An arm within
  :data:`ARM_RADIUS` units of its chain wins over the torso and the legs.
* **head**: a disk around the face joints (nose, eyes, ears), plus the **neck**, a capsule
  of radius :data:`NECK_RADIUS` units from the chin to the neck joint (no wider: the chest
  beside the neck is clothing). Face 13 = the face's outline when given (``face_outline``:
  FaceMesh's oval, grown by :data:`OUTLINE_GROWTH`), else the face ellipse (from the eyes
  down to the chin, as wide as the ears), and the neck; **hair 2** = the rest of the head,
  and the mask above the shoulders beside the head that no arm claims (hair over the
  shoulders). With the photo, hair below the eyes must have the colour of the hair above
  them, else it is clothing (a collar, a hood), hair over the shoulders must have the hair's
  colour, else it is the part it was nearest, and face pixels that are not skin, have the
  hair's colour and touch the hair are hair (a fringe, hair framing the face: the hair's
  colour from the top of the head without its skin, unused when a mixture); upper-clothes
  pixels of the hair's colour that touch the hair, down to 0.6 torso lengths below the
  shoulders and within 0.6 units of the body's axis, are long hair (over the chest, down the
  back), unless most of the top has the hair's colour; only locks (the region opened by a
  disk of :data:`HAIR_STRAND` units), not glints and seams. A **back view** (no nose and no
  eyes, or ``facing="back"``, which :mod:`spgnet.photo.detect` decides with a face detector
  because BlazePose reports a nose on back views too) has no face: head and neck are hair;
  with the photo, the neck's skin is face (CIHP labels visible neck skin face from either
  side) and neck pixels neither skin nor of the hair's colour are a collar (upper-clothes);
  the neck (its capsule reaches up to the head's centre there) ends where the silhouette
  widens into the head (:func:`_below_head`), so hair that passes for skin stays hair.
  With no skin colour to go by (hands hidden, legs covered), nape pixels in the skin box
  and not of the hair's colour are face.
* **skirt 12**: when the mask fills the gap between the thighs (the legs are apart but
  the garment is not), the pants are a skirt; with the photo, only when the shins do not
  have the garment's chroma (wide trousers go on down to the feet). Over closed legs
  (no gap) the hem tells, with the photo: pants whose hem is at least :data:`HEM_FLARE`
  times as wide as the bare legs just below it, and closed between the legs by cloth of
  the garment's colour, are a skirt (shorts end as wide as the thighs, wide shorts are
  open between the legs). Pants with no bare legs below them (cut by the photo's bottom
  edge, or reaching the feet) are a skirt when their hem is at least as wide as the
  clothed hips and whole between the legs (trousers are narrower there, or open). With
  the photo, a skirt of the torso clothing's colour, or of its colours (a striped or
  dotted dress: their colour histograms nearly the same), is a **dress 6** (the skirt and
  the torso clothing's pixels of the skirt's colours).

With the photo (``image``), a **skin colour** model is taken from the face's pixels that
have a skin colour at all (inside the Cb x Cr box of Chai and Ngan: sunglasses, beards and
grey photos stay out; median and spread, the chroma spread capped), or, on a back view or
behind a masked face, from the hands' pixels (each arm beyond its wrist; both hands, of one
colour: a glove passes for skin), or, without hands, from the shins when 70 % of them
have a skin colour and it is not the garment's at the hips:
a pixel is skin when it is near that model and inside the box. Arm pixels that are not
skin are sleeves (upper-clothes; with no skin model, arm pixels of the torso clothing's
colour outside the skin box are), neck pixels below the chin that are not skin are a
collar (upper-clothes; front views only), and pants/skirt pixels that are skin are the bare legs
(**left-leg 16** / **right-leg 17**; specks smaller than a tenth of a shoulder width
squared stay cloth); when a quarter of the garment at the top of the legs passes for skin
(the hips are always clothed: brown or beige trousers), leg pixels nearer its colour than
the skin's are cloth. A chain uses its consecutive present joints. With
no usable keypoint at all, the whole mask is upper-clothes. Everything is vectorised over
pixels: one ``(S, H, W)`` distance stack for the S segments.
"""

from __future__ import annotations

import numpy as np

from spgnet import SPGNetError
from spgnet.parsing import LABEL_INDEX
from spgnet.pose import check_keypoints, is_missing

FACE, HAIR = LABEL_INDEX["face"], LABEL_INDEX["hair"]
UPPER, PANTS, SKIRT = LABEL_INDEX["upper-clothes"], LABEL_INDEX["pants"], LABEL_INDEX["skirt"]
DRESS = LABEL_INDEX["dress"]
LEFT_ARM, RIGHT_ARM = LABEL_INDEX["left-arm"], LABEL_INDEX["right-arm"]
LEFT_LEG, RIGHT_LEG = LABEL_INDEX["left-leg"], LABEL_INDEX["right-leg"]
LEFT_SHOE, RIGHT_SHOE = LABEL_INDEX["left-shoe"], LABEL_INDEX["right-shoe"]

# Parts of the distance stack, in the order that wins ties, and the CIHP label each one
# gives (the head and the neck are split into face and hair later).
_TORSO, _NECK_PART, _HEAD, _L_LEG, _R_LEG, _L_ARM, _R_ARM = range(7)
_PART_LABEL = np.array([UPPER, FACE, FACE, PANTS, PANTS, LEFT_ARM, RIGHT_ARM], dtype=np.uint8)

# OpenPose-18 joints (docs/design.md §2).
_NOSE, _NECK, _R_SH, _L_SH, _R_HIP, _R_KNEE, _L_HIP, _L_KNEE = 0, 1, 2, 5, 8, 9, 11, 12
_R_EYE, _L_EYE, _R_EAR, _L_EAR = 14, 15, 16, 17
_CHAINS = {_R_ARM: (2, 3, 4), _L_ARM: (5, 6, 7), _R_LEG: (8, 9, 10), _L_LEG: (11, 12, 13)}

# Proportions, in units (shoulder widths), torso lengths (shoulders -> hips) or eye-nose
# distances ("steps"): an adult's average build, rounded.
COLLAR = 0.15  # units the torso reaches above the shoulder joints
NECK_RADIUS = 0.14  # neck half-width, in units
HEAD_WIDENING = 1.3  # seen from the back, the head begins where the silhouette is this much wider than the neck
ARM_RADIUS = 0.12  # arm half-width in units: within it an arm beats torso and legs
HAND = 0.6  # the hand goes on beyond the wrist along the forearm, this many forearm lengths
THIGH, SHIN = 0.85, 0.85  # hip -> knee and knee -> ankle, in torso lengths (for missing joints)
THIGH_RADIUS = 0.2  # thigh half-width in units (the gap between the thighs starts beyond it)
SKIRT_FILL = 0.6  # fraction of that gap the mask must fill for a skirt
MIN_GAP = 0.01  # units squared: a smaller gap is thighs that touch (wide trousers), not a skirt
SAME_GARMENT = 8.0  # CIELAB distance of the median colours of skirt and top below which they are one dress
SHOE_FRACTION = 0.9  # knee -> ankle fraction beyond which a leg pixel is shoe
SAME_COLOUR_SHOE = 1.0  # ... and where a shoe of the shin's colour starts (at the detected ankle)
HAIRLINE, CHIN = 1.3, 2.5  # hairline above and chin below the eyes, in steps
FACE_HALF_WIDTH = 1.6  # face half-width, in steps
OUTLINE_GROWTH = 0.08  # a face outline (FaceMesh's oval, inside the hairline) is grown this much about its centre
SKIN_LIGHTNESS, SKIN_CHROMA = 3.0, 3.0  # skin / hair: within these many spreads of the median colour
# Skin colours lie in this Cb x Cr box (YCbCr, 0-255; the box of Chai and Ngan, 1999): face
# pixels outside it (sunglasses, goggles, a beard, a grey photo) do not enter the skin model,
# and no pixel outside it is skin (beige and khaki cloth has Cr < 133).
SKIN_CB, SKIN_CR = (77.0, 127.0), (133.0, 173.0)
MIN_SKIN_SHARE = 0.25  # the skin model needs this share of the face's pixels inside the box
BARE_SHINS = 0.7  # ... and this share of the shins' (bare shins are skin all over; shin guards, socks are not)
SKIN_SPREAD_CAP = np.array([40.0, 8.0, 8.0])  # at most this spread (Y, Cb, Cr): one face, one skin
WAIST_RANGE = (-0.3, 0.4)  # torso lengths around the hip line where the waist is looked for
WAIST_MODELS = (0.35, 0.7)  # torso lengths from the hip line of the top's and the bottom's colour samples
WAIST_OVERLAP = 0.5  # Bhattacharyya coefficient of the two samples' histograms from which top and bottom are one colour
DRESS_OVERLAP = 0.8  # Bhattacharyya coefficient of skirt's and top's histograms from which they are one patterned cloth
DRESS_BIN = 0.005  # a colour holding more than this share of the skirt's histogram is one of the dress's colours
HISTOGRAM_LEVELS = 16  # levels per YCbCr channel of the colour histograms
COLOURS_APART = 4.0  # two colour models differ when their medians are this many spreads apart
HIP_BAND = 0.15  # torso lengths below the hip line that are always clothed
HIP_SKIN = 0.25  # when this share of that band passes for skin, the skin model also takes in the garment
HAIR_SPREAD_MAX = np.array([30.0, 8.0, 8.0])  # a hair colour model wider than this (Y, Cb, Cr) is a mixture
HAIR_STRAND = 0.03  # units: long hair is opened with a disk of this radius (thinner is not a lock)
LONG_HAIR = (0.6, 0.6)  # hair falls at most this far: torso lengths below the shoulders, units aside
HEM_BAND = 0.2  # units: the height of the bands whose widths tell a skirt's hem from shorts
HEM_FLARE = 1.5  # a hem this many times as wide as the bare legs below it is a skirt's
HEM_CORE = 0.04  # units: the garment is opened with a disk of this radius before its hem is looked for
LONG_CLOSED = 0.9  # share of the line between the legs a skirt with no bare legs below it covers at its hem
BETWEEN_LEGS = 0.05  # units: half-width of the line between the legs where a skirt's hem is closed
SHIN_BAND = (0.7, 0.88)  # knee -> ankle fractions of the shin whose colour tells skirts from pants


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


def _axes(kp: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, float | None]:
    """The body's down direction (mid-shoulders -> mid-hips, else image down) and the torso length."""
    sh = [j for j in (_R_SH, _L_SH) if present[j]]
    hips = [j for j in (_R_HIP, _L_HIP) if present[j]]
    if sh and hips:
        v = kp[hips].mean(0) - kp[sh].mean(0)
        n = float(np.linalg.norm(v))
        if n > 1e-6:
            return v / n, n
    return np.array([0.0, 1.0]), None


def _complete_legs(kp: np.ndarray, present: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints with the knees and ankles of known hips filled in (see the module docstring)."""
    kp, present = kp.copy(), present.copy()
    down, torso = _axes(kp, present)
    torso = torso if torso is not None else 1.5 * unit
    for hip, knee, ankle in (_CHAINS[_R_LEG], _CHAINS[_L_LEG]):
        if not present[hip]:
            continue
        if not present[knee]:
            kp[knee] = 0.5 * (kp[hip] + kp[ankle]) if present[ankle] else kp[hip] + THIGH * torso * down
            present[knee] = True
        if not present[ankle]:
            kp[ankle] = kp[knee] + SHIN * torso * _unit_vector(kp[knee] - kp[hip], down)
            present[ankle] = True
    return kp, present


def _face_frame(kp: np.ndarray, present: np.ndarray, unit: float):
    """(eye centre, up unit vector, eye-nose step) of a front view, or None without eyes and nose."""
    eyes = [j for j in (_R_EYE, _L_EYE) if present[j]]
    if not eyes and not present[_NOSE]:
        return None
    eye = kp[eyes].mean(0) if eyes else kp[_NOSE]
    face_centre = kp[[j for j in (_NOSE, _R_EYE, _L_EYE) if present[j]]].mean(0)
    if present[_NECK]:
        up = _unit_vector(face_centre - kp[_NECK], (0.0, -1.0))
    elif len(eyes) == 2:
        across = kp[_L_EYE] - kp[_R_EYE]
        up = _unit_vector(np.array([across[1], -across[0]]), (0.0, -1.0))
        if present[_NOSE] and float(up @ (eye - kp[_NOSE])) < 0:
            up = -up
    else:
        up = np.array([0.0, -1.0])
    eye_nose = float(np.linalg.norm(kp[_NOSE] - eye)) if present[_NOSE] and eyes else 0.0
    return eye, up, max(eye_nose, 0.12 * unit)


def _body_parts(kp: np.ndarray, present: np.ndarray, unit: float, face):
    """Capsules ``[(a, b, radius, part)]`` and filled quadrilaterals ``[(4 corners, part)]``."""
    capsules: list[tuple[np.ndarray, np.ndarray, float, int]] = []
    quads: list[tuple[np.ndarray, int]] = []

    face_joints = [j for j in (_NOSE, _R_EYE, _L_EYE, _R_EAR, _L_EAR) if present[j]]
    head_centre = None
    if face_joints:
        pts = kp[face_joints]
        head_centre = pts.mean(0)
        spread = float(np.linalg.norm(pts[:, None] - pts[None], axis=-1).max())
        capsules.append((head_centre, head_centre, max(0.5 * spread, 0.3 * unit), _HEAD))
    elif present[_NECK]:  # no face joint: assume the head sits above the neck
        head_centre = kp[_NECK] + np.array([0.0, -0.6 * unit])
        capsules.append((head_centre, head_centre, 0.3 * unit, _HEAD))
    if head_centre is not None and present[_NECK]:
        chin = head_centre
        if face is not None:
            eye, up, step = face
            chin = eye - CHIN * step * up
        capsules.append((kp[_NECK], chin, NECK_RADIUS * unit, _NECK_PART))

    if present[_R_SH] and present[_L_SH]:
        r_sh, l_sh = kp[_R_SH], kp[_L_SH]
        if present[_R_HIP] and present[_L_HIP]:
            r_hip, l_hip = kp[_R_HIP], kp[_L_HIP]
        elif present[_R_HIP]:  # the missing hip: translate the known one by the shoulder vector
            r_hip = kp[_R_HIP]
            l_hip = r_hip + (l_sh - r_sh)
        elif present[_L_HIP]:
            l_hip = kp[_L_HIP]
            r_hip = l_hip + (r_sh - l_sh)
        else:
            across = l_sh - r_sh
            down = _unit_vector(np.array([-across[1], across[0]]), (0.0, 1.0))
            mid = 0.5 * (r_sh + l_sh)
            away = mid - head_centre if head_centre is not None else np.array([0.0, 1.0])
            if float(down @ away) < 0:
                down = -down
            r_hip, l_hip = r_sh + 1.5 * unit * down, l_sh + 1.5 * unit * down
        lift = COLLAR * unit * _unit_vector(0.5 * (r_sh + l_sh - r_hip - l_hip), (0.0, -1.0))
        quads.append((np.stack([r_sh + lift, l_sh + lift, l_hip, r_hip]), _TORSO))
    else:
        for a, b in ((_NECK, _R_SH), (_NECK, _L_SH), (_NECK, _R_HIP), (_NECK, _L_HIP), (_R_HIP, _L_HIP)):
            if present[a] and present[b]:
                capsules.append((kp[a], kp[b], 0.0, _TORSO))

    for part, chain in _CHAINS.items():
        joints = [j for j in chain if present[j]]
        for a, b in zip(joints[:-1], joints[1:]):
            capsules.append((kp[a], kp[b], 0.0, part))
        elbow, wrist = chain[1], chain[2]
        if part in (_L_ARM, _R_ARM) and present[elbow] and present[wrist]:  # the hand, beyond the wrist
            capsules.append((kp[wrist], kp[wrist] + HAND * (kp[wrist] - kp[elbow]), 0.0, part))

    for corners, part in quads:  # a filled quad's edges give its distance outside it
        for k in range(4):
            capsules.append((corners[k], corners[(k + 1) % 4], 0.0, part))
    return capsules, quads


def _grid_along(h: int, w: int, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``(H, W)``: every pixel's coordinate along ``direction`` from ``origin``."""
    return (np.arange(w)[None, :] - origin[0]) * direction[0] + (np.arange(h)[:, None] - origin[1]) * direction[1]


def _below_head(mask: np.ndarray, capsules: list, unit: float) -> np.ndarray:
    """``(H, W)`` bool: below the bottom of the head along the neck's capsule (from the neck
    joint up to the head's centre on a back view): the silhouette, within half a unit of
    the capsule's axis, is narrowest at the neck, and the head begins above that where it is
    :data:`HEAD_WIDENING` times as wide again. All True without a neck capsule or a
    narrowing (long hair over the neck)."""
    h, w = mask.shape
    neck = [c for c in capsules if c[3] == _NECK_PART]
    if not neck:
        return np.ones((h, w), bool)
    start, end = np.asarray(neck[0][0], np.float64), np.asarray(neck[0][1], np.float64)
    length = float(np.linalg.norm(end - start))
    if length < 4:
        return np.ones((h, w), bool)
    up = (end - start) / length
    along = _grid_along(h, w, start, up)
    band = mask & (np.abs(_grid_along(h, w, start, np.array([-up[1], up[0]]))) <= 0.5 * unit)
    band &= (along >= 0) & (along < length)
    widths = np.bincount(along[band].astype(np.int64), minlength=int(length) + 1).astype(np.float64)
    widths = np.convolve(widths, np.ones(3) / 3, mode="same")
    lo, hi = int(0.2 * length), max(int(0.9 * length), int(0.2 * length) + 1)
    narrowest = lo + int(np.argmin(widths[lo:hi]))
    wider = np.nonzero(widths[narrowest:] >= HEAD_WIDENING * max(widths[narrowest], 1.0))[0]
    if not len(wider):
        return np.ones((h, w), bool)
    return along < narrowest + int(wider[0])


def _split_head(labels: np.ndarray, head: np.ndarray, neck: np.ndarray, face,
                outline: np.ndarray | None = None) -> None:
    """Label the head pixels face 13 or hair 2, the neck face (in place). The face is the
    face's ``outline`` (FaceMesh's oval) grown by :data:`OUTLINE_GROWTH` about its centre,
    or without one the face ellipse."""
    if face is None:  # back view: the back of the head and the neck are hair
        labels[head | neck] = HAIR
        return
    h, w = labels.shape
    if outline is not None:
        from skimage.draw import polygon

        centre = outline.mean(0)
        grown = centre + (1.0 + OUTLINE_GROWTH) * (outline - centre)
        in_face = np.zeros((h, w), bool)
        in_face[polygon(grown[:, 1], grown[:, 0], shape=(h, w))] = True
        labels[head] = np.where(in_face[head], FACE, HAIR)
        labels[neck] = FACE
        return
    eye, up, step = face
    side = np.array([-up[1], up[0]])
    centre = eye - 0.5 * (CHIN - HAIRLINE) * step * up  # halfway between the hairline and the chin
    along = _grid_along(h, w, centre, up) / (0.5 * (CHIN + HAIRLINE) * step)
    lateral = _grid_along(h, w, centre, side) / (FACE_HALF_WIDTH * step)
    in_face = along ** 2 + lateral ** 2 <= 1.0
    labels[head] = np.where(in_face[head], FACE, HAIR)
    labels[neck] = FACE


def _median_spread(colours: np.ndarray, cap: np.ndarray | None = None):
    """Median and spread (MAD as a standard deviation, at least 12 / 4 / 4, at most ``cap``)
    of ``(N, 3)`` YCbCr colours."""
    med = np.median(colours, 0)
    spread = np.maximum(1.4826 * np.median(np.abs(colours - med), 0), np.array([12.0, 4.0, 4.0]))
    return med, spread if cap is None else np.minimum(spread, cap)


def _colour_model(ycc: np.ndarray, pixels: np.ndarray):
    """Median and spread of the colours of ``pixels`` in the YCbCr photo ``ycc`` (e.g. the
    hair's), or None with too few of them."""
    if pixels.sum() < 30:
        return None
    return _median_spread(ycc[pixels])


def _hair_model(ycc: np.ndarray, pixels: np.ndarray):
    """The hair's colour model from ``pixels``, or None with fewer than 30 of them or when
    their spread exceeds :data:`HAIR_SPREAD_MAX` (hair mixed with skin or background: a
    model that wide would take shirts' shadows for hair)."""
    model = _colour_model(ycc, pixels)
    if model is None or (model[1] > HAIR_SPREAD_MAX).any():
        return None
    return model


def _skin_model(ycc: np.ndarray, face: np.ndarray, min_share: float = MIN_SKIN_SHARE):
    """The skin colour model from the ``face`` pixels that have a skin colour at all (see
    :data:`SKIN_CB`), its spread capped at :data:`SKIN_SPREAD_CAP`; None when fewer than
    ``min_share`` of the face (or 30 pixels) qualify: a masked or grey face."""
    if face.sum() < 30:
        return None
    colours = ycc[face]
    skin = _in_skin_box(colours)
    if skin.sum() < max(30, min_share * len(colours)):
        return None
    return _median_spread(colours[skin], SKIN_SPREAD_CAP)


def _opened(region: np.ndarray, radius: float) -> np.ndarray:
    """``region`` opened with a disk of ``radius`` pixels (rounded, at least 1): its parts
    thinner than the disk go."""
    from scipy import ndimage

    r = max(1, round(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndimage.binary_opening(region, structure=xx * xx + yy * yy <= r * r)


def _without_specks(region: np.ndarray, min_area: float) -> np.ndarray:
    """``region`` without its connected parts (8-connected) smaller than ``min_area`` pixels."""
    from scipy import ndimage

    parts, n = ndimage.label(region, structure=np.ones((3, 3), bool))
    if n == 0:
        return region
    sizes = np.bincount(parts.ravel(), minlength=n + 1)
    keep = sizes >= min_area
    keep[0] = False
    return keep[parts]


def _touching(region: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The connected parts (8-connected) of ``region`` that touch ``other``."""
    from scipy import ndimage

    parts, n = ndimage.label(region | other, structure=np.ones((3, 3), bool))
    keep = np.zeros(n + 1, bool)
    keep[np.unique(parts[other])] = True
    keep[0] = False
    return region & keep[parts]


def _in_skin_box(ycc: np.ndarray) -> np.ndarray:
    """``(...)`` bool: YCbCr colours ``(..., 3)`` inside the skin box (:data:`SKIN_CB`, :data:`SKIN_CR`)."""
    return ((ycc[..., 1] >= SKIN_CB[0]) & (ycc[..., 1] <= SKIN_CB[1])
            & (ycc[..., 2] >= SKIN_CR[0]) & (ycc[..., 2] <= SKIN_CR[1]))


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cb = 128.0 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128.0 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    return np.stack([y, cb, cr], -1)


def _colour_codes(colours: np.ndarray) -> np.ndarray:
    """``(...,)`` bin of each YCbCr colour ``(..., 3)`` in a histogram of
    :data:`HISTOGRAM_LEVELS` levels per channel."""
    q = np.clip((colours * (HISTOGRAM_LEVELS / 256.0)).astype(np.int64), 0, HISTOGRAM_LEVELS - 1)
    return (q[..., 0] * HISTOGRAM_LEVELS + q[..., 1]) * HISTOGRAM_LEVELS + q[..., 2]


def _histogram(colours: np.ndarray) -> np.ndarray:
    """The normalised colour histogram of ``(N, 3)`` YCbCr colours (:func:`_colour_codes`):
    unlike a median and a spread, it keeps every colour of a pattern (stripes, dots)."""
    counts = np.bincount(_colour_codes(colours), minlength=HISTOGRAM_LEVELS ** 3).astype(np.float64)
    return counts / counts.sum()


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The Bhattacharyya coefficient of two normalised histograms (:func:`_histogram`): 1
    for the same colours in the same shares, 0 for no colour in common."""
    return float(np.sqrt(a * b).sum())


def _colour_distance(ycc: np.ndarray, model) -> np.ndarray:
    """``(H, W)``: every pixel's distance to a colour model, in its spreads (lightness and chroma)."""
    med, spread = model
    return np.linalg.norm((ycc - med) / spread, axis=-1)


def _apart(a, b) -> bool:
    """Whether two colour models differ: each median lies at least :data:`COLOURS_APART`
    spreads of the other model from it."""
    return min(float(_colour_distance(a[0], b)), float(_colour_distance(b[0], a))) >= COLOURS_APART


def _has_colour(ycc: np.ndarray, model, lightness: bool = True) -> np.ndarray:
    """``(H, W)`` bool: pixels of the YCbCr photo ``ycc`` within the model's spread
    (lightness, unless ``lightness`` is False: shading changes it, and chroma)."""
    med, spread = model
    z = (ycc - med) / spread
    near = np.hypot(z[..., 1], z[..., 2]) <= SKIN_CHROMA
    return near & (np.abs(z[..., 0]) <= SKIN_LIGHTNESS) if lightness else near


def coarse_parsing(mask: np.ndarray, kp: np.ndarray, image: np.ndarray | None = None,
                   facing: str | None = None, face_outline: np.ndarray | None = None) -> np.ndarray:
    """Coarse CIHP labels ``(H, W)`` uint8 from a person ``mask (H, W)`` bool and ``kp (18, 2)`` (x, y).

    Every mask pixel gets a body-part label (see the module docstring), every other pixel
    0. Joints may lie off the image; missing joints are negative (docs/design.md §2).
    ``image``: the ``(H, W, 3)`` uint8 RGB photo, for the skin colour rules; ``facing``:
    ``"front"``, ``"back"`` or None (decided from the keypoints: back without nose and eyes);
    ``face_outline``: ``(K, 2)`` x, y around the face (FaceMesh's face oval, see
    :meth:`spgnet.photo.detect.PoseDetector.face_outline`), which then gives the face instead
    of the ellipse (front views; ignored on a back view).
    """
    mask = np.asarray(mask).astype(bool)
    kp = np.asarray(kp, dtype=np.float64)
    if mask.ndim != 2:
        raise SPGNetError(f"coarse_parsing needs an (H, W) mask, got shape {mask.shape}")
    check_keypoints(kp, "coarse_parsing: keypoints", ndims=(2,))
    if facing not in (None, "front", "back"):
        raise SPGNetError(f"coarse_parsing: facing must be 'front', 'back' or None, got {facing!r}")
    if face_outline is not None:
        face_outline = np.asarray(face_outline, dtype=np.float64)
        if face_outline.ndim != 2 or face_outline.shape[1] != 2 or len(face_outline) < 3 \
                or not np.isfinite(face_outline).all():
            raise SPGNetError(f"coarse_parsing: face_outline must be (K >= 3, 2) finite x, y, got {face_outline.shape}")
    h, w = mask.shape
    if image is not None and np.asarray(image).shape != (h, w, 3):
        raise SPGNetError(f"coarse_parsing: image must be (H, W, 3) = ({h}, {w}, 3), got {np.asarray(image).shape}")
    labels = np.zeros((h, w), np.uint8)
    if not mask.any():
        return labels
    present = ~is_missing(kp)
    unit = _body_unit(kp, present, mask)
    face = None if facing == "back" else _face_frame(kp, present, unit)
    detected = present.copy()
    kp, present = _complete_legs(kp, present, unit)
    down, torso_length = _axes(kp, present)
    capsules, quads = _body_parts(kp, present, unit, face)
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
    nearest = part_ids[dist.argmin(0)]  # (H, W) part id (ties: the torso, then the neck)

    arm_rows = np.isin(part_ids, (_L_ARM, _R_ARM))
    if arm_rows.any():
        arm_dist = dist[arm_rows]
        near_arm = (arm_dist.min(0) <= ARM_RADIUS * unit) & np.isin(nearest, (_TORSO, _L_LEG, _R_LEG))
        nearest = np.where(near_arm, part_ids[arm_rows][arm_dist.argmin(0)], nearest)
    leg_rows = np.isin(part_ids, (_L_LEG, _R_LEG))
    # every pixel's position down the body from the hip line, in pixels (None without both hips)
    hip_axis = _grid_along(h, w, kp[[_R_HIP, _L_HIP]].mean(0), down) if present[_R_HIP] and present[_L_HIP] else None
    if leg_rows.any() and hip_axis is not None:
        # below the hip line the legs take over from the torso (the pants' waistband is straight)
        below = hip_axis > 0
        nearest = np.where(below & (nearest == _TORSO), part_ids[leg_rows][dist[leg_rows].argmin(0)], nearest)
    over_shoulders = None  # the pixels taken for hair over the shoulders (below), and their parts before
    if (present[_R_SH] or present[_L_SH]) and np.isin(part_ids, (_HEAD,)).any():
        # above the shoulders and off the arm chains: hair that falls over the shoulders
        sh = kp[[j for j in (_R_SH, _L_SH) if present[j]]].mean(0)
        above = _grid_along(h, w, sh, -down) > COLLAR * unit
        far_from_arm = dist[arm_rows].min(0) > ARM_RADIUS * unit if arm_rows.any() else np.ones((h, w), bool)
        taken = above & far_from_arm & np.isin(nearest, (_L_ARM, _R_ARM, _TORSO))
        over_shoulders = (taken, nearest)  # and the parts they were nearest (np.where below makes a new array)
        nearest = np.where(taken, _HEAD, nearest)

    labels_all = _PART_LABEL[nearest]
    legs = np.isin(nearest, (_L_LEG, _R_LEG))
    ycc = None if image is None else _ycbcr(np.asarray(image))  # the photo in YCbCr, for every colour rule
    if _skirt(mask, kp, present, detected, unit, ycc):
        labels_all = np.where(legs, np.uint8(SKIRT), labels_all)
    # every pixel's position along each shin, 0 at the knee and 1 at the detected ankle
    shin_axes = {part: _along_shin(kp, detected, part, (h, w)) for part in (_L_LEG, _R_LEG)}
    for part, shoe in ((_L_LEG, LEFT_SHOE), (_R_LEG, RIGHT_SHOE)):
        if shin_axes[part] is not None:
            labels_all = np.where((nearest == part) & (shin_axes[part] >= SHOE_FRACTION), np.uint8(shoe), labels_all)
    labels[mask] = labels_all[mask]
    neck = nearest == _NECK_PART
    if neck.any():  # the neck is its capsule; the pixels merely nearest to it belong to the head
        within = dist[np.searchsorted(part_ids, _NECK_PART)] <= 0
        nearest = np.where(neck & ~within, _HEAD, nearest)
    _split_head(labels, mask & (nearest == _HEAD), mask & (nearest == _NECK_PART), face, face_outline)

    if image is not None:
        skin_model = None
        top_of_head = labels == HAIR  # a back view: the whole head
        if face is not None:
            # hair below the eyes must look like the hair above them (else: a collar, a hood)
            eye, up, step = face
            above_eyes = _grid_along(h, w, eye, up)
            low = above_eyes < 0
            top_of_head &= ~low
            hair_above = _colour_model(ycc, top_of_head)
            if hair_above is not None:
                labels[low & (labels == HAIR) & ~_has_colour(ycc, hair_above)] = UPPER
            skin_model = _skin_model(ycc, (labels == FACE) & ~(mask & (nearest == _NECK_PART)))
        if skin_model is None:  # a back view, or a face behind a mask: the hands' skin
            skin_model = _hands_skin(ycc, mask, kp, present, nearest)
        hip_band = _hip_band(labels, hip_axis, torso_length)
        garment = _colour_model(ycc, hip_band)
        if skin_model is None and garment is not None:  # no hands either: bare shins below a hem
            shins = _skin_model(ycc, mask & _shins(shin_axes, nearest), BARE_SHINS)
            if shins is not None and float(_colour_distance(garment[0], shins)) >= COLOURS_APART:
                skin_model = shins  # not the hips' garment going on down
        skin = _has_colour(ycc, skin_model) & _in_skin_box(ycc) & mask if skin_model is not None else None
        # the hair's colour, from the top of the head without its skin (a forehead, a bald
        # scalp); none when that is a mixture of colours (:func:`_hair_model`)
        hair_model = _hair_model(ycc, top_of_head if skin is None else top_of_head & ~skin)
        if hair_model is not None and over_shoulders is not None:
            # hair over the shoulders has the hair's colour: what has not (a collar seen
            # from behind, a raised arm's sleeve) is what it was nearest to
            taken, before = over_shoulders
            not_hair = taken & (labels == HAIR) & ~_has_colour(ycc, hair_model)
            labels[not_hair] = _PART_LABEL[before[not_hair]]
        if hair_model is not None and torso_length is not None:
            _long_hair(labels, ycc, hair_model, kp, present, down, unit, torso_length)
        # a back view's nape: the hair-labelled neck below the head (its skin is face, as CIHP
        # labels it; a collar is clothing)
        nape = (labels == HAIR) & (nearest == _NECK_PART) & _below_head(mask, capsules, unit) if face is None else None
        if skin_model is None:  # no skin to compare with: arms of the top's colour are its sleeves
            top = _colour_model(ycc, (labels == UPPER) & (nearest == _TORSO))
            if top is not None:
                labels[np.isin(labels, (LEFT_ARM, RIGHT_ARM)) & _has_colour(ycc, top) & ~_in_skin_box(ycc)] = UPPER
            if nape is not None and hair_model is not None:  # the nape in a skin colour, not the hair's
                labels[nape & _in_skin_box(ycc) & ~_has_colour(ycc, hair_model)] = FACE
        else:
            arms = np.isin(labels, (LEFT_ARM, RIGHT_ARM))
            labels[arms & ~skin] = UPPER  # sleeves
            if face is not None:
                below_chin = above_eyes < -CHIN * step
                labels[(labels == FACE) & (nearest == _NECK_PART) & below_chin & ~skin] = UPPER  # a collar
                if hair_model is not None:  # fringe and side hair inside the face ellipse
                    hairy = (labels == FACE) & (nearest == _HEAD) & ~skin & _has_colour(ycc, hair_model)
                    labels[_touching(hairy, labels == HAIR)] = HAIR
            else:  # a back view's nape: its skin is face, a collar is clothing
                labels[nape & skin] = FACE
                if hair_model is not None:
                    labels[nape & ~skin & ~_has_colour(ycc, hair_model)] = UPPER
            bare = np.isin(labels, (PANTS, SKIRT)) & skin
            if garment is not None and float(skin[hip_band].mean()) >= HIP_SKIN:
                # the garment at the hips passes for skin: nearer its colour than the skin's is cloth
                bare &= _colour_distance(ycc, skin_model) < _colour_distance(ycc, garment)
            bare = _without_specks(bare, (0.1 * unit) ** 2)  # skin-coloured specks on cloth are cloth
            labels[bare & (nearest == _L_LEG)] = LEFT_LEG
            labels[bare & (nearest == _R_LEG)] = RIGHT_LEG
            if hip_axis is not None:  # a skirt over closed legs: a flared hem, closed between the legs
                between = _between_legs(kp, present, unit, (h, w))
                if _flared_hem(labels, ycc, hip_axis / unit, unit, between):
                    labels[labels == PANTS] = SKIRT
        if torso_length is not None and hip_axis is not None:
            _waist(labels, ycc, nearest, hip_axis / torso_length)
        _shoe_tops(labels, ycc, shin_axes, nearest, unit)
        _dress(labels, np.asarray(image), ycc, nearest)
    return labels


def _long_hair(labels: np.ndarray, ycc: np.ndarray, hair_model, kp: np.ndarray, present: np.ndarray,
               down: np.ndarray, unit: float, torso_length: float) -> None:
    """Long hair down the back or over the chest (in place): upper-clothes pixels of the
    hair's colour that touch the hair, within :data:`LONG_HAIR` (torso lengths below the
    shoulders, units either side of the body's axis) are hair. Not when most of the
    torso's clothing has the hair's colour (a black top under black hair: no telling)."""
    h, w = labels.shape
    shoulders = kp[[j for j in (_R_SH, _L_SH) if present[j]]].mean(0)
    along = _grid_along(h, w, shoulders, down) / torso_length
    across = np.abs(_grid_along(h, w, shoulders, np.array([-down[1], down[0]]))) / unit
    top = labels == UPPER
    hairy = top & _has_colour(ycc, hair_model)
    if not top.any() or hairy.sum() > 0.5 * top.sum():
        return
    near = (along <= LONG_HAIR[0]) & (across <= LONG_HAIR[1])
    locks = _opened(hairy & near, HAIR_STRAND * unit)  # hair falls in locks, not in lines and specks (reflections, seams)
    labels[_touching(locks, labels == HAIR)] = HAIR


def _hip_band(labels: np.ndarray, hip_axis: np.ndarray | None, torso_length: float | None) -> np.ndarray:
    """``(H, W)`` bool: the pants/skirt pixels within :data:`HIP_BAND` torso lengths below
    the hip line (``hip_axis``: pixels down the body from it; all False without it). The
    hips are clothed: these pixels are cloth whatever their colour, so when :data:`HIP_SKIN` of them pass for skin (brown or beige
    trousers), the leg pixels nearer their colour than the skin's are cloth too. (Not
    always: a patterned garment's colour model is so wide that bare legs would be nearer it.)"""
    if torso_length is None or hip_axis is None:
        return np.zeros(labels.shape, bool)
    along = hip_axis / torso_length
    return np.isin(labels, (PANTS, SKIRT)) & (along >= 0) & (along <= HIP_BAND)


def _waist(labels: np.ndarray, ycc: np.ndarray, nearest: np.ndarray, along: np.ndarray) -> None:
    """Move the border between the top and the bottom garment (in place) from the hip line
    to where their colours meet: a long top reaches below the hip joints, high-waisted
    trousers above them.

    Colour histograms (:func:`_histogram`) of the top (upper-clothes :data:`WAIST_MODELS`
    torso lengths above the hip line) and of the bottom (pants/skirt as far below it);
    every garment pixel within :data:`WAIST_RANGE` of the hip line belongs to the one
    whose histogram holds its colour more often (a striped or dotted top keeps all its
    colours; a median and a spread took a dotted top's dots for the shorts below it). The
    waist is the line across the body, in steps of 0.05 torso lengths, that leaves the
    most pixels on their own side: bottom garment above it becomes upper-clothes, the
    torso's upper-clothes below it the bottom garment (a sleeve stays a sleeve). Nothing
    changes when the histograms overlap (Bhattacharyya coefficient at least
    :data:`WAIST_OVERLAP`: a dress, one suit) or a sample has fewer than 30 pixels.
    ``along``: every pixel's position down the body from the hip line, in torso lengths."""
    near, far = WAIST_MODELS
    top = (labels == UPPER) & (along >= -far) & (along <= -near)
    bottom_labels = np.isin(labels, (PANTS, SKIRT))
    bottom = bottom_labels & (along >= near) & (along <= far)
    zone = (np.isin(labels, (UPPER, PANTS, SKIRT))) & (along >= WAIST_RANGE[0]) & (along <= WAIST_RANGE[1])
    if top.sum() < 30 or bottom.sum() < 30 or zone.sum() < 30:
        return
    top_colours, bottom_colours = _histogram(ycc[top]), _histogram(ycc[bottom])
    if _overlap(top_colours, bottom_colours) >= WAIST_OVERLAP:
        return  # one cloth, or two alike
    a = along[zone]
    codes = _colour_codes(ycc[zone])
    bottom_like = (bottom_colours[codes] > top_colours[codes]).astype(np.int64)
    cuts = np.arange(WAIST_RANGE[0], WAIST_RANGE[1] + 1e-9, 0.05)
    above = a[None, :] < cuts[:, None]  # (C, N): the pixel lies above the cut
    agree = (above & (bottom_like == 0)[None]).sum(1) + (~above & (bottom_like == 1)[None]).sum(1)
    waist = float(cuts[int(np.argmax(agree))])
    bottom_label = SKIRT if (labels == SKIRT).sum() > (labels == PANTS).sum() else PANTS
    labels[zone & bottom_labels & (along < waist)] = UPPER  # a long top
    labels[zone & (labels == UPPER) & (nearest == _TORSO) & (along >= waist)] = bottom_label  # a high waist


def _shoe_tops(labels: np.ndarray, ycc: np.ndarray, shin_axes: dict, nearest: np.ndarray, unit: float) -> None:
    """Where the shoe starts (in place): shoe pixels nearer the colour of their leg's shin
    (trousers or skin, :data:`SHIN_BAND` of the way from knee to ankle) than the colour of
    the shoe go back to the leg's label (specks smaller than (0.05 units)² stay shoe). The
    shoe's colour is that of the lower half of the foot (of the shoe pixels beyond the
    ankle, those beyond the midpoint between the ankle and the farthest; all of them when
    that leaves fewer than 30): BlazePose's ankle sits above the drawn one, and trouser leg
    below it mixed into a colour taken from everything beyond it. Per leg with a detected
    ankle (``shin_axes``: see :func:`_along_shin`).
    When shoe and shin look alike (the two medians closer than :data:`COLOURS_APART`
    spreads: dark trousers over dark shoes), the colours cannot tell where the shoe starts:
    shoe pixels above :data:`SAME_COLOUR_SHOE` of the shin (the detected ankle) that have
    the shin's colour go back to the leg (a trouser leg covers the top of a shoe;
    BlazePose's ankle sits a little above the annotated one, so even this stays on the high
    side). Nothing changes when either has fewer than 30 pixels."""
    for part, shoe_label in ((_L_LEG, LEFT_SHOE), (_R_LEG, RIGHT_SHOE)):
        along = shin_axes[part]
        if along is None:
            continue
        shoe = labels == shoe_label
        leg = _shin_band(nearest, part, along) & np.isin(labels, (PANTS, SKIRT, LEFT_LEG, RIGHT_LEG))
        below = shoe & (along >= 1.0)
        if below.any():  # the lower half of the foot (trouser legs reach below a detected ankle)
            sole = below & (along >= 0.5 * (1.0 + along[below].max()))
            below = sole if sole.sum() >= 30 else below
        shoe_model, leg_model = _colour_model(ycc, below), _colour_model(ycc, leg)
        if shoe_model is None or leg_model is None:
            continue
        if _apart(leg_model, shoe_model):
            back = shoe & (_colour_distance(ycc, leg_model) < _colour_distance(ycc, shoe_model))
            back = _without_specks(back, (0.05 * unit) ** 2)  # a glint on a shoe is not the trousers
        else:
            back = shoe & (nearest == part) & (along < SAME_COLOUR_SHOE) & _has_colour(ycc, leg_model)
        leg_labels = labels[leg]
        labels[back] = np.bincount(leg_labels).argmax()


def _along_shin(kp: np.ndarray, detected: np.ndarray, part: int, size: tuple[int, int]) -> np.ndarray | None:
    """``(H, W)``: every pixel's position along the leg ``part``'s shin (0 at the knee, 1 at
    the ankle), or None when its ankle was not detected."""
    _, knee, ankle = _CHAINS[part]
    shin = kp[ankle] - kp[knee]
    if not detected[ankle] or float(shin @ shin) <= 0:
        return None
    return _grid_along(*size, kp[knee], shin) / float(shin @ shin)


def _shin_band(nearest: np.ndarray, part: int, along: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the pixels of leg ``part`` :data:`SHIN_BAND` of the way from its knee
    to its ankle (``along``: its shin axis, see :func:`_along_shin`)."""
    return (nearest == part) & (along >= SHIN_BAND[0]) & (along <= SHIN_BAND[1])


def _shins(shin_axes: dict, nearest: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: :func:`_shin_band` of every leg with a detected ankle."""
    out = np.zeros(nearest.shape, bool)
    for part, along in shin_axes.items():
        if along is not None:
            out |= _shin_band(nearest, part, along)
    return out


def _hands_skin(ycc: np.ndarray, mask: np.ndarray, kp: np.ndarray, present: np.ndarray, nearest: np.ndarray):
    """The skin colour model from the hands (each arm beyond its wrist, for arms whose elbow
    and wrist are known), or None. When both hands give a model, the two must agree (each
    median within :data:`COLOURS_APART` spreads of the other model): one hand may wear a
    glove (a catcher's brown mitt passes for skin) or hold something. A single hand is
    taken as it is."""
    h, w = nearest.shape
    hands = []
    for part in (_L_ARM, _R_ARM):
        _, elbow, wrist = _CHAINS[part]
        forearm = kp[wrist] - kp[elbow]
        if present[elbow] and present[wrist] and float(forearm @ forearm) > 0:
            hands.append(mask & (nearest == part) & (_grid_along(h, w, kp[wrist], forearm) > 0))
    models = [m for m in (_skin_model(ycc, hand) for hand in hands) if m is not None]
    if len(models) == 2:
        a, b = models
        if max(float(_colour_distance(a[0], b)), float(_colour_distance(b[0], a))) >= COLOURS_APART:
            return None  # the hands differ: which one is bare?
        return _skin_model(ycc, hands[0] | hands[1])
    return models[0] if models else None


def _dress(labels: np.ndarray, image: np.ndarray, ycc: np.ndarray, nearest: np.ndarray) -> None:
    """A skirt whose garment also covers the torso is a dress (in place): when the median
    colours of the skirt and of the torso's upper-clothes lie closer than
    :data:`SAME_GARMENT` (CIELAB), or their colour histograms (:func:`_histogram`) are
    nearly the same (Bhattacharyya coefficient at least :data:`DRESS_OVERLAP`: a striped,
    checked or dotted dress, whose two parts have different medians where the pattern
    falls differently), the skirt becomes **dress 6**, and so do the upper-clothes pixels
    of the skirt's colours: within the spreads of :func:`_colour_model`, or of a colour
    that holds more than :data:`DRESS_BIN` of the skirt's histogram (a pattern's second
    colour). The rest of the upper-clothes (a jacket, sleeves of another colour) stays.
    On the real photos, tops and trousers taken for skirts (a white T-shirt over jeans, a
    ski racer's suit) have coefficients of 0.57-0.59; the synthetic dresses, 0.95 or more."""
    skirt = labels == SKIRT
    torso = (labels == UPPER) & (nearest == _TORSO)
    if skirt.sum() < 30 or torso.sum() < 30:
        return
    from skimage.color import rgb2lab

    medians = [np.median(rgb2lab(image[region].reshape(-1, 1, 3)).reshape(-1, 3), 0) for region in (skirt, torso)]
    skirt_colours, torso_colours = _histogram(ycc[skirt]), _histogram(ycc[torso])
    if (float(np.linalg.norm(medians[0] - medians[1])) >= SAME_GARMENT
            and _overlap(skirt_colours, torso_colours) < DRESS_OVERLAP):
        return
    same = _has_colour(ycc, _colour_model(ycc, skirt)) | (skirt_colours[_colour_codes(ycc)] > DRESS_BIN)
    labels[(labels == UPPER) & same] = DRESS
    labels[skirt] = DRESS


def _flared_hem(labels: np.ndarray, ycc: np.ndarray, along: np.ndarray, unit: float, between: np.ndarray) -> bool:
    """True when the pants end in a hem at least :data:`HEM_FLARE` times as wide as the
    bare legs just below it and closed between the legs: a skirt, also over closed legs,
    where :func:`_skirt` sees no gap to fill. Widths are pixel counts in two bands
    :data:`HEM_BAND` units high along the body's axis: the garment's last band (its hem:
    the 97th percentile of the garment's extent down the axis, once strips thinner than
    :data:`HEM_CORE` units are taken off it) and the bare legs' band just
    below it, which must hold at least 0.03 units squared (long trousers with a
    skin-coloured speck at the ankle do not count). Shorts end as wide as the thighs they
    cover, or, when wide, open between the legs: at least half of the hem band's
    ``between`` pixels (the line between the legs, :func:`_between_legs`) must be the
    garment and of its colour (a loose mask fills the opening with background).

    With too few bare leg pixels below the hem (a garment cut by the photo's bottom edge,
    or reaching the feet), the hem band must be at least as wide as the clothed hips
    (upper-clothes and pants within half a band of the hip line) and :data:`LONG_CLOSED`
    of its ``between`` pixels the garment of its colour.
    ``along``: every pixel's position down the body from the hip line, in units."""
    garment = labels == PANTS
    bare = np.isin(labels, (LEFT_LEG, RIGHT_LEG))
    if garment.sum() < 30:
        return False
    # the garment without thin strips: the shaded edges of bare shins that fail the skin
    # test, left as garment, put the hem at the ankles
    core = _opened(garment, HEM_CORE * unit)
    if core.sum() >= 30:
        garment = core
    hem = float(np.percentile(along[garment], 97))
    band = (along > hem - HEM_BAND) & (along <= hem)
    hem_width = (garment & band).sum()
    legs_width = (bare & (along > hem) & (along <= hem + HEM_BAND)).sum()
    model = _colour_model(ycc, garment)
    cloth = garment & _has_colour(ycc, model) if model is not None else garment
    closed = float(cloth[band & between].mean()) if (band & between).any() else 0.0
    if legs_width >= 0.03 * unit * unit:
        return hem_width >= HEM_FLARE * legs_width and closed >= 0.5
    # no bare legs below the hem: a garment cut by the photo's bottom edge or reaching the
    # feet. A skirt hangs from the hips: at its hem at least as wide as the clothed hips,
    # and whole between the legs; trousers are narrower there (thighs and shins taper) or
    # open between the legs
    hips = (np.isin(labels, (UPPER, PANTS)) & (np.abs(along) <= HEM_BAND / 2)).sum()
    return hem_width >= hips and closed >= LONG_CLOSED


def _between_legs(kp: np.ndarray, present: np.ndarray, unit: float, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the line between the legs, within :data:`BETWEEN_LEGS` units of the
    midpoints of the two hips, knees and ankles (consecutive present pairs)."""
    pairs = [(r, l) for r, l in zip(_CHAINS[_R_LEG], _CHAINS[_L_LEG]) if present[r] and present[l]]
    mids = np.array([(kp[r] + kp[l]) / 2 for r, l in pairs])
    if len(mids) < 2:
        return np.zeros(size, bool)
    return _segment_distances(np.stack([mids[:-1], mids[1:]], 1), *size).min(0) <= BETWEEN_LEGS * unit


def _skirt(mask: np.ndarray, kp: np.ndarray, present: np.ndarray, detected: np.ndarray, unit: float,
           ycc: np.ndarray | None = None) -> bool:
    """True when the mask fills the gap between two detected, spread thighs (a skirt or a
    dress); a gap smaller than :data:`MIN_GAP` units squared is thighs that touch. With
    the photo, the gap must have the colour of the top of the thighs (else it is background
    inside a loose mask), and the garment must end above the shins: when most of the
    shins (:data:`SHIN_BAND` of the way from knee to ankle) have the chroma of the gap (its
    lightness is left out: the gap is often in shadow), the legs wear pants that are wide
    or close together."""
    legs = (_R_HIP, _R_KNEE, _L_HIP, _L_KNEE)
    if not detected[list(legs)].all():
        return False
    h, w = mask.shape
    quad = kp[[_R_HIP, _L_HIP, _L_KNEE, _R_KNEE]].astype(np.float32)
    inside = _inside_triangles(np.stack([quad[[0, 1, 2]], quad[[0, 2, 3]]]), h, w)
    thighs = _segment_distances(kp[[[_R_HIP, _R_KNEE], [_L_HIP, _L_KNEE]]], h, w).min(0)
    gap = inside & (thighs > THIGH_RADIUS * unit)
    # only the lower half of the gap (near the hips the legs touch anyway)
    mid_hip, mid_knee = kp[[_R_HIP, _L_HIP]].mean(0), kp[[_R_KNEE, _L_KNEE]].mean(0)
    axis = mid_knee - mid_hip
    length2 = float(axis @ axis)
    if length2 <= 0:
        return False
    gap &= _grid_along(h, w, mid_hip, axis) / length2 >= 0.5
    if gap.sum() < max(12.0, MIN_GAP * unit * unit) or float(mask[gap].mean()) < SKIRT_FILL:
        return False
    if ycc is None:  # without the photo (its YCbCr ``ycc``) the silhouette decides
        return True
    garment = _colour_model(ycc, gap & mask)
    if garment is None:
        return True
    top_of_thighs = mask & (thighs <= THIGH_RADIUS * unit) & (_grid_along(h, w, mid_hip, axis) / length2 <= 0.3)
    hips = _colour_model(ycc, top_of_thighs)
    if hips is not None and _apart(garment, hips):
        return False  # the gap is not what the hips wear: background inside a loose mask
    shins = np.zeros((h, w), bool)
    for _, knee, ankle in (_CHAINS[_R_LEG], _CHAINS[_L_LEG]):
        shin = kp[ankle] - kp[knee]
        if not present[ankle] or float(shin @ shin) <= 0:
            continue
        along = _grid_along(h, w, kp[knee], shin) / float(shin @ shin)
        near = _segment_distances(kp[[[knee, ankle]]], h, w)[0] <= THIGH_RADIUS * unit
        shins |= near & (along >= SHIN_BAND[0]) & (along <= SHIN_BAND[1])
    shins &= mask
    if shins.sum() < 12:
        return True
    return float(_has_colour(ycc, garment, lightness=False)[shins].mean()) < 0.5


__all__ = ["coarse_parsing"]
