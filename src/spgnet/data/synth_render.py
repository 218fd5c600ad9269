"""Synthetic people, part 2: per-pixel rendering, CIHP parsing and ground-truth flow.

Rendering (no anti-aliasing, so every pixel belongs to exactly one part): for each
placed part, in painting order (far to near), the pixels of its bounding box are mapped
to the part's local frame ``(u, v) = A^-1 (p - origin)`` (vectorised numpy), tested
against the part's shape and written into three buffers: part id, u, v (a painter's
z-buffer). Colour and CIHP label are then functions of ``(part, u, v)`` evaluated per
pixel: garment textures (solid, stripes, checks, dots) live in the part's own frame,
so a pattern follows the part from pose to pose, and because the colour is a smooth
function of ``(u, v)`` the same point has the same colour in every picture.

Ground-truth backward flow (docs/design.md §2, §5): for a target pixel showing ``(part, u, v)``
the source position is ``origin_src[part] + A_src[part] @ (u, v)`` (the analytic
inverse of the source rendering, no search); ``flow = source - target``. Visibility:
2 on target background; 1 where the source's part buffer at the nearest pixel is another
part, or the point is off the source image, or the pair shows different surfaces; else 0.

Front and back surfaces (documented choice): a back view shows the back surface of the
person. For the head, hair, neck, torso and pelvis the front and back are different
points (face vs back of the head, neckline vs back of a shirt), so a point seen from the
front in one picture and from the back in the other is invisible (vis 1). Arms, hands,
legs and feet are thin: both surfaces use the same ``(u, v)`` and the same appearance,
and the ground truth maps a point to the point straight through the limb, visible when
not occluded (the flow there is still exact in the sense that warping reproduces the
target). Flow values are defined (the mapped point) even where vis is 1.

CIHP labels (``spgnet.parsing``): hair 2, face 13 (the neck is labelled face),
upper-clothes 5 (sleeves included), pants 9 (shorts too) or skirt 12, or dress 6 for the
whole garment (top, sleeves and skirt) of a person wearing one, left/right arm 14/15
(bare skin of arms and hands), left/right leg 16/17 (bare skin), left/right shoe 18/19;
"left" is the person's left, whatever the view.
"""

from __future__ import annotations

import math

import numpy as np

from spgnet.data.synth_body import PART_ID, PARTS, TWO_SIDED_PARTS, Identity, PlacedPart, Pose, Texture, place_figure

NUM_PART_IDS = len(PARTS) + 1  # including background 0
_TWO_SIDED = np.zeros(NUM_PART_IDS, dtype=bool)
_TWO_SIDED[[PART_ID[n] for n in TWO_SIDED_PARTS]] = True
_FACE_KEYPOINTS = (0, 14, 15, 16, 17)


# --------------------------------------------------------------------------- shapes


def _inside(part: PlacedPart, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inside mask, half-width at v)`` of a part's shape at local points ``(u, v)`` (cm)."""
    p = part.params
    if part.shape == "capsule":
        vc = np.clip(v, 0.0, p["L"])
        w = p["r0"] + (p["r1"] - p["r0"]) * (vc / p["L"])
        dv = p["fore"] * (v - vc)  # round caps that stay round in the image when foreshortened
        return u * u + dv * dv <= w * w, w
    if part.shape == "head":
        rx, ry = p["rx"], p["ry"]
        rxv = rx * (1.0 - 0.14 * np.clip(v / ry, 0.0, 1.0))  # narrower towards the chin
        face = (u / rxv) ** 2 + (v / ry) ** 2 <= 1.0
        volume = ((u / (1.08 * rx)) ** 2 + ((v + 0.05 * ry) / (1.06 * ry)) ** 2 <= 1.0) & (v < p["vol"])
        return face | volume, np.full_like(u, rx)
    if part.shape == "torso":
        w = np.interp(v, p["stops"], p["widths"])
        top = p["drop"] * (u / p["w_top"]) ** 2 - p["dip"] * np.maximum(0.0, 1.0 - (u / p["neck_w"]) ** 2)
        return (np.abs(u) <= w) & (v >= top) & (v <= p["stops"][-1]), w
    if part.shape == "trapezoid":
        t = np.clip((v - p["v0"]) / (p["v1"] - p["v0"]), 0.0, 1.0)
        w = p["w0"] + (p["w1"] - p["w0"]) * t
        bottom = p["v1"] + p["curve"] * (u / p["w1"]) ** 2  # a slightly curved hem
        return (np.abs(u) <= w) & (v >= p["v0"]) & (v <= bottom), w
    raise ValueError(f"unknown shape {part.shape!r}")


# --------------------------------------------------------------------------- appearance


def nominal_px_per_cm(height: int) -> float:
    """Pixels per cm of a standing person filling ~90% of an image ``height`` px tall."""
    return height / 195.0


def _square_wave(x: np.ndarray, sharpness: float = 2.2) -> np.ndarray:
    """A soft square wave in [0, 1] of period 1 (a sine wave at ``sharpness`` 1)."""
    return 0.5 + 0.5 * np.clip(sharpness * np.sin(2.0 * math.pi * x), -1.0, 1.0)


def texture(tex: Texture, u: np.ndarray, v: np.ndarray, px_per_cm: float = 1.3) -> np.ndarray:
    """Colour ``(N, 3)`` in [0, 1] of a texture at local points ``(u, v)`` (cm).

    ``px_per_cm`` is the nominal scale of the image (:func:`nominal_px_per_cm`): small
    images get coarser patterns with softer edges (a period of at least 8 px, edges of at
    least ~1.5 px), so that bilinear resampling reproduces them (the GT-flow warp test);
    at 256 px and above the identity's own period and edges are used.
    """
    if tex.kind == "solid":
        return np.broadcast_to(tex.color, (len(u), 3)).copy()
    period = max(tex.period, 8.0 / px_per_cm)
    sharpness = float(np.clip(period * px_per_cm / 6.0, 1.0, 2.2))
    a = math.radians(tex.angle)
    s = (u * math.sin(a) + v * math.cos(a)) / period + tex.phase  # across the bands
    q = (u * math.cos(a) - v * math.sin(a)) / period + tex.phase
    if tex.kind == "stripes":
        t = _square_wave(s, sharpness)
    elif tex.kind == "checks":
        t = 0.5 * (_square_wave(s, sharpness) + _square_wave(q, sharpness))  # gingham: three tones
    elif tex.kind == "dots":
        row = np.floor(s)
        fq = q + 0.5 * (row % 2)  # staggered rows
        d = np.hypot(s - row - 0.5, fq - np.floor(fq) - 0.5) * period  # cm to the nearest dot centre
        t = np.clip((0.3 * period - d) / max(1.2, 1.5 / px_per_cm) + 0.5, 0.0, 1.0)
    else:
        raise ValueError(f"unknown texture kind {tex.kind!r}")
    return tex.color * (1.0 - t)[:, None] + tex.color2 * t[:, None]


def _ellipse(u, v, cu, cv, ru, rv) -> np.ndarray:
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _head(ident: Identity, p: dict, u: np.ndarray, v: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray]:
    rx, ry = p["rx"], p["ry"]
    if view == "back":
        return np.broadcast_to(ident.hair_color, (len(u), 3)).copy(), np.full(len(u), 2, np.uint8)
    rxv = rx * (1.0 - 0.14 * np.clip(v / ry, 0.0, 1.0))
    style = ident.hair_style
    hairline = -ry * ((0.58 if style == "buzz" else 0.42) - 0.22 * (u / rx) ** 2)
    hair = ((u / rxv) ** 2 + (v / ry) ** 2 > 1.0) | (v < hairline)
    if style in ("bob", "long"):
        hair |= (np.abs(u) > 0.8 * rx) & (v < 0.45 * ry)
    rgb = np.broadcast_to(ident.skin, (len(u), 3)).copy()
    for side in (-1.0, 1.0):
        eye = _ellipse(u, v, side * 0.36 * rx, -0.08 * ry, 0.17 * rx, 0.09 * ry)
        brow = _ellipse(u, v, side * 0.36 * rx, -0.24 * ry, 0.24 * rx, 0.045 * ry)
        rgb[eye] = (0.14, 0.10, 0.09)
        rgb[brow] = ident.hair_color * 0.9
    rgb[_ellipse(u, v, 0.0, 0.2 * ry, 0.1 * rx, 0.11 * ry)] *= 0.9  # nose shadow
    rgb[_ellipse(u, v, 0.0, 0.5 * ry, 0.24 * rx, 0.065 * ry)] = ident.lip_color
    rgb[hair] = ident.hair_color
    return rgb, np.where(hair, 2, 13).astype(np.uint8)


def _appearance(part: PlacedPart, ident: Identity, view: str, u: np.ndarray, v: np.ndarray,
                halfwidth: np.ndarray, px_per_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (N, 3) in [0, 1], CIHP labels (N,))`` of a part's pixels at local ``(u, v)``."""
    name, p = part.name, part.params
    side, kind = (name[0], name[2:]) if name[:2] in ("r_", "l_") else ("", name)
    skin_label = {"r": 15, "l": 14}.get(side, 13)
    top_label = 6 if ident.bottom == "dress" else 5  # a dress is one garment, top and sleeves too
    n = len(u)
    if kind == "head":
        rgb, labels = _head(ident, p, u, v, view)
    elif kind == "hair_back":
        rgb, labels = np.broadcast_to(ident.hair_color, (n, 3)).copy(), np.full(n, 2, np.uint8)
    elif kind == "neck":
        rgb, labels = np.broadcast_to(ident.skin * 0.86, (n, 3)).copy(), np.full(n, 13, np.uint8)
    elif kind == "torso":
        rgb, labels = texture(ident.top, u, v, px_per_cm), np.full(n, top_label, np.uint8)
    elif kind == "pelvis":
        rgb = texture(ident.top if ident.bottom == "dress" else ident.pants, u, v, px_per_cm)
        labels = np.full(n, {"skirt": 12, "dress": 6}.get(ident.bottom, 9), np.uint8)
    elif kind in ("upper_arm", "lower_arm", "hand"):
        if kind == "upper_arm":
            sleeve = np.full(n, ident.sleeves == "long") | ((ident.sleeves == "short") & (v < ident.sleeve_len))
        elif kind == "lower_arm":
            sleeve = np.full(n, ident.sleeves == "long") & (v < p["L"] - 1.0)
        else:
            sleeve = np.zeros(n, bool)
        rgb = np.where(sleeve[:, None], texture(ident.top, u, v, px_per_cm), ident.skin)
        labels = np.where(sleeve, top_label, skin_label).astype(np.uint8)
    elif kind in ("upper_leg", "lower_leg"):
        skin_label = {"r": 17, "l": 16}[side]
        if ident.bottom == "pants":
            cover = np.ones(n, bool)
        elif ident.bottom == "shorts" and kind == "upper_leg":
            cover = v < ident.bottom_len
        else:
            cover = np.zeros(n, bool)
        rgb = np.where(cover[:, None], texture(ident.pants, u, v, px_per_cm), ident.skin)
        labels = np.where(cover, 9, skin_label).astype(np.uint8)
    elif kind == "foot":
        rgb = np.broadcast_to(ident.shoe_color, (n, 3)).copy()
        rgb[v > p["L"] + 0.3 * p["r1"] / p["fore"]] *= 0.75  # sole
        labels = np.full(n, {"r": 19, "l": 18}[side], np.uint8)
    else:
        raise ValueError(f"unknown part {name!r}")
    shade = 1.0 - 0.28 * np.clip(u / np.maximum(halfwidth, 1e-6), -1.0, 1.0) ** 2  # round, lit from the front
    return rgb * shade[:, None], labels


def _background(ident: Identity, parts: list[PlacedPart], h: int, w: int) -> np.ndarray:
    """A studio backdrop: the identity's colour, a faint vertical gradient, a soft floor shadow."""
    y = np.arange(h, dtype=np.float64)[:, None]
    shade = np.repeat(1.02 - 0.08 * y / max(h - 1, 1), w, axis=1)
    feet = [p for p in parts if p.name.endswith("_foot")]
    soles = np.array([p.origin + p.A @ np.array([0.0, p.params["L"]]) for p in feet])
    if len(feet) and soles[:, 1].max() < h:
        ankles = np.array([p.origin for p in feet])
        width = max(np.abs(soles[:, 0] - ankles[:, 0]).max() * 2.0, np.ptp(soles[:, 0])) + 4.0
        cx, cy = soles[:, 0].mean(), soles[:, 1].max() - 0.5
        ry = max(1.5, 0.012 * h)
        y0, y1 = max(int(cy - 4 * ry), 0), min(int(cy + 4 * ry) + 1, h)  # exp(-16): nothing beyond
        x = np.arange(w, dtype=np.float64)[None, :]
        shade[y0:y1] *= 1.0 - 0.18 * np.exp(-(((x - cx) / width) ** 2) - ((y[y0:y1] - cy) / ry) ** 2)
    return ident.background * shade[..., None]


# --------------------------------------------------------------------------- rendering


def render_person(identity: Identity, pose: Pose, size: tuple[int, int]) -> dict:
    """Render one picture of a person at ``size = (H, W)``.

    Returns a dict:
      * ``image`` (H, W, 3) uint8 RGB; ``parsing`` (H, W) uint8 CIHP labels;
      * ``keypoints`` (18, 2) float32 (x, y), -1 for joints off the image and for the face
        joints (0, 14-17) of a back view;
      * ``part`` (H, W) uint8 part id (0 background, else ``PART_ID``), ``u`` / ``v``
        (H, W) float64 local coordinates (cm; 0 on background);
      * ``origins`` (P, 2), ``affines`` (P, 2, 2), ``present`` (P,) bool indexed by part
        id (P = 18): the part placement used by :func:`ground_truth_flow`; ``view``.
    """
    h, w = (int(s) for s in size)
    parts, kp = place_figure(identity, pose, (h, w))
    part_buf = np.zeros((h, w), np.uint8)
    u_buf = np.zeros((h, w))
    v_buf = np.zeros((h, w))
    origins = np.zeros((NUM_PART_IDS, 2))
    affines = np.zeros((NUM_PART_IDS, 2, 2))
    present = np.zeros(NUM_PART_IDS, bool)
    for part in parts:  # far to near: nearer parts overwrite
        pid = part.pid
        origins[pid], affines[pid], present[pid] = part.origin, part.A, True
        u0, u1, v0, v1 = part.extent
        corners = part.origin + np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]]) @ part.A.T
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), [w - 1, h - 1])
        if x1 < x0 or y1 < y0:
            continue
        inv = np.linalg.inv(part.A)
        dx = np.arange(x0, x1 + 1) - part.origin[0]
        dy = (np.arange(y0, y1 + 1) - part.origin[1])[:, None]
        u = inv[0, 0] * dx + inv[0, 1] * dy
        v = inv[1, 0] * dx + inv[1, 1] * dy
        inside, _ = _inside(part, u, v)
        part_buf[y0:y1 + 1, x0:x1 + 1][inside] = pid
        u_buf[y0:y1 + 1, x0:x1 + 1][inside] = u[inside]
        v_buf[y0:y1 + 1, x0:x1 + 1][inside] = v[inside]

    rgb = _background(identity, parts, h, w).reshape(-1, 3)
    labels = np.zeros(h * w, np.uint8)
    flat_part, flat_u, flat_v = part_buf.reshape(-1), u_buf.reshape(-1), v_buf.reshape(-1)
    for part in parts:
        idx = np.flatnonzero(flat_part == part.pid)
        if idx.size:
            u, v = flat_u[idx], flat_v[idx]
            _, halfwidth = _inside(part, u, v)
            rgb[idx], labels[idx] = _appearance(part, identity, pose.view, u, v, halfwidth, nominal_px_per_cm(h))
    image = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8).reshape(h, w, 3)

    kp = kp.astype(np.float32)
    r = np.rint(kp)
    off = (r < 0).any(1) | (r[:, 0] > w - 1) | (r[:, 1] > h - 1)
    if pose.view == "back":
        off[list(_FACE_KEYPOINTS)] = True
    kp[off] = -1.0
    return {"image": image, "parsing": labels.reshape(h, w), "keypoints": kp, "part": part_buf, "u": u_buf,
            "v": v_buf, "origins": origins, "affines": affines, "present": present, "view": pose.view}


def ground_truth_flow(src: dict, tgt: dict) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow target -> source of two renders of one identity.

    Returns ``flow (2, H, W) float32`` (dx, dy; source = target pixel + flow; 0 on
    background) and ``vis (H, W) uint8`` (0 visible, 1 hidden / off-image / other
    surface in the source, 2 target background). Source and target may differ in size.
    """
    part = tgt["part"]
    h, w = part.shape
    hs, ws = src["part"].shape
    flow = np.zeros((2, h, w), np.float32)
    vis = np.full((h, w), 2, np.uint8)
    ys, xs = np.nonzero(part)
    if ys.size == 0:
        return flow, vis
    k = part[ys, xs]
    uv = np.stack([tgt["u"][ys, xs], tgt["v"][ys, xs]], axis=1)  # (N, 2)
    q = src["origins"][k] + np.einsum("nij,nj->ni", src["affines"][k], uv)  # (N, 2) source (x, y)
    flow[0, ys, xs] = q[:, 0] - xs
    flow[1, ys, xs] = q[:, 1] - ys
    qx, qy = np.rint(q[:, 0]).astype(np.int64), np.rint(q[:, 1]).astype(np.int64)
    on = (qx >= 0) & (qx < ws) & (qy >= 0) & (qy < hs)
    same = np.zeros_like(on)
    same[on] = src["part"][qy[on], qx[on]] == k[on]
    same &= src["present"][k]
    if src["view"] != tgt["view"]:
        same &= _TWO_SIDED[k]
    vis[ys, xs] = np.where(same, 0, 1).astype(np.uint8)
    return flow, vis
