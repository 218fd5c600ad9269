"""Synthetic people, part 1: who (identity) and how they stand (pose) -> placed body parts.

A person is 17 body parts (:data:`PARTS`), each a simple shape (tapered capsule,
ellipse, trapezoid, torso outline) given in its own local frame ``(u, v)`` in
centimetres: ``v`` runs along the part (down the limb, down the torso), ``u`` across it.
A pose places every part with an affine map ``p = origin + A @ (u, v)`` from the local
frame to image pixels ``(x, y)`` (x = column, y = row, pixel centres at integers). The
map is a rotation and uniform scale, with a foreshortening factor along the limb for
limbs that point towards or away from the camera, and a horizontal mirror for back views.
Because ``A`` is invertible, rendering (pixel -> (u, v)) and ground-truth flow
((u, v) -> source pixel) are exact inverses of each other (see ``synth_render``).

Skeleton (canonical frame: centimetres, y down, the person seen from the front, so the
person's right side is at -x): the hip centre is the origin, the torso leans by
``lean`` degrees, limb directions are angles from straight down, given per side as an
abduction (positive = away from the body). A back view mirrors the canonical frame
horizontally: the person's right side then appears on the image's right, as in a
photo taken from behind. Keypoints are OpenPose COCO-18 (docs/design.md §2), derived from the
same joints the parts hang on, so they are consistent with the drawn figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Body parts; a part's id in the part buffer is its index + 1 (0 = background).
PARTS: tuple[str, ...] = (
    "hair_back", "head", "neck", "torso", "pelvis",
    "r_upper_arm", "r_lower_arm", "r_hand", "l_upper_arm", "l_lower_arm", "l_hand",
    "r_upper_leg", "r_lower_leg", "r_foot", "l_upper_leg", "l_lower_leg", "l_foot",
)
PART_ID: dict[str, int] = {name: i + 1 for i, name in enumerate(PARTS)}
# Thin parts: their front and back surfaces share one (u, v) parametrisation and look the
# same, so ground-truth flow treats them as visible across front/back views (synth_render).
TWO_SIDED_PARTS: frozenset[str] = frozenset(
    f"{s}_{p}" for s in "rl" for p in ("upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
)

# --------------------------------------------------------------------------- palettes (RGB in [0, 1])

GARMENT_COLORS = np.array([
    (0.12, 0.16, 0.32), (0.08, 0.08, 0.09), (0.93, 0.93, 0.91), (0.55, 0.56, 0.58), (0.25, 0.26, 0.28),
    (0.72, 0.12, 0.14), (0.45, 0.09, 0.16), (0.93, 0.60, 0.68), (0.84, 0.76, 0.62), (0.60, 0.55, 0.38),
    (0.36, 0.40, 0.20), (0.13, 0.35, 0.22), (0.10, 0.45, 0.48), (0.62, 0.75, 0.90), (0.25, 0.36, 0.55),
    (0.85, 0.65, 0.15), (0.90, 0.45, 0.15), (0.70, 0.62, 0.85), (0.40, 0.26, 0.16), (0.95, 0.91, 0.80),
])
PANTS_COLORS = np.array([
    (0.25, 0.36, 0.55), (0.17, 0.24, 0.40), (0.08, 0.08, 0.09), (0.60, 0.55, 0.38), (0.45, 0.46, 0.48),
    (0.12, 0.16, 0.32), (0.84, 0.76, 0.62), (0.92, 0.92, 0.90), (0.40, 0.26, 0.16), (0.36, 0.40, 0.20),
])
SKIN_TONES = np.array([
    (0.96, 0.80, 0.69), (0.92, 0.72, 0.58), (0.85, 0.64, 0.49), (0.72, 0.51, 0.36), (0.55, 0.37, 0.24),
    (0.38, 0.25, 0.16),
])
HAIR_COLORS = np.array([
    (0.07, 0.06, 0.06), (0.20, 0.13, 0.08), (0.38, 0.24, 0.13), (0.50, 0.22, 0.10), (0.80, 0.66, 0.40),
    (0.62, 0.62, 0.62),
])
_HAIR_P = (0.3, 0.25, 0.2, 0.1, 0.1, 0.05)
SHOE_COLORS = np.array([
    (0.07, 0.07, 0.08), (0.92, 0.92, 0.90), (0.35, 0.22, 0.13), (0.45, 0.45, 0.47), (0.14, 0.18, 0.35),
    (0.65, 0.12, 0.12),
])
TEXTURE_KINDS: tuple[str, ...] = ("solid", "stripes", "checks", "dots")
HAIR_STYLES: tuple[str, ...] = ("buzz", "short", "bob", "long")


# --------------------------------------------------------------------------- identity


@dataclass
class Texture:
    """A colour pattern as a function of a part's ``(u, v)`` (cm): see ``synth_render.texture``."""

    kind: str = "solid"  # one of TEXTURE_KINDS
    color: np.ndarray = field(default_factory=lambda: np.ones(3))
    color2: np.ndarray = field(default_factory=lambda: np.zeros(3))
    period: float = 8.0  # cm between stripes / dot centres
    angle: float = 0.0  # degrees; 0 = bands across the part (constant v)
    phase: float = 0.0  # fraction of a period


@dataclass
class Body:
    """Body proportions in centimetres (the person standing straight is ~160-190 cm)."""

    head_rx: float
    head_ry: float
    neck_len: float  # chin to shoulder line
    neck_r: float
    shoulder_half: float  # shoulder joint offset from the midline
    shoulder_drop: float  # shoulder joint below the neck base
    torso_len: float  # neck base to hip line
    chest_half: float
    waist_half: float
    hip_half: float
    hip_joint_half: float
    upper_arm: float
    lower_arm: float
    hand: float
    arm_r: tuple[float, float, float, float]  # radius at shoulder, elbow, wrist, hand
    upper_leg: float
    lower_leg: float
    foot: float
    leg_r: tuple[float, float, float, float]  # radius at hip, knee, ankle, foot

    @property
    def standing_height(self) -> float:
        """Head top to sole, standing straight (the placement reference)."""
        return (2 * self.head_ry + self.neck_len + self.torso_len + self.upper_leg + self.lower_leg
                + 0.55 * self.foot + self.leg_r[3])


@dataclass
class Identity:
    """Everything that stays the same between the poses of one person."""

    body: Body
    skin: np.ndarray
    hair_style: str  # one of HAIR_STYLES
    hair_color: np.ndarray
    hair_len: float  # cm below the chin ("long" only)
    sleeves: str  # "none" | "short" | "long"
    sleeve_len: float  # cm from the shoulder joint ("short")
    top: Texture
    top_hem: float  # cm below the hip line where the upper garment ends (negative: tucked in)
    top_loose: float  # extra half-width in cm
    neckline: float  # cm the front neckline dips below the shoulder line
    bottom: str  # "pants" | "shorts" | "skirt" | "dress" (a skirt of the top's cloth, sewn to it)
    bottom_len: float  # shorts: cm of the thigh covered; skirt or dress: cm below the hip line
    skirt_flare: float
    pants_loose: float  # cm added to the leg radii under pants
    pants: Texture
    shoe_color: np.ndarray
    lip_color: np.ndarray
    background: np.ndarray


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float = 0.04, p=None) -> np.ndarray:
    c = palette[rng.choice(len(palette), p=p)] + rng.normal(0.0, jitter, 3)
    return np.clip(c, 0.02, 0.98)


def _sample_texture(rng: np.random.Generator, palette: np.ndarray, p_solid: float) -> Texture:
    color = _pick(rng, palette)
    kind = "solid" if rng.random() < p_solid else TEXTURE_KINDS[1 + rng.integers(3)]
    # a second colour that stands out: a palette colour at least 0.3 away, else white/black
    for _ in range(8):
        color2 = _pick(rng, GARMENT_COLORS)
        if np.abs(color2 - color).mean() > 0.3:
            break
    else:
        color2 = np.full(3, 0.92) if color.mean() < 0.5 else np.full(3, 0.1)
    period = {"solid": 8.0, "stripes": rng.uniform(7.0, 13.0), "checks": rng.uniform(9.0, 15.0),
              "dots": rng.uniform(8.0, 12.0)}[kind]
    angle = float(rng.choice([0.0, 0.0, 90.0, 45.0])) if kind == "stripes" else float(rng.choice([0.0, 45.0]))
    return Texture(kind, color, color2, float(period), angle, float(rng.random()))


def sample_body(rng: np.random.Generator) -> Body:
    s = rng.uniform(0.93, 1.07)  # overall size
    build = rng.uniform(0.0, 1.0)  # 0 slim .. 1 broad
    u = rng.uniform
    head_rx = u(7.6, 8.5)
    shoulder_half = 14.5 + 3.5 * build + rng.normal(0, 0.5)
    hip_half = 15.5 + 2.0 * (1 - build) + u(-0.8, 0.8)
    thigh_r = u(7.0, 8.0) + 0.6 * build
    return Body(
        head_rx=head_rx, head_ry=head_rx * u(1.25, 1.36), neck_len=s * u(6.0, 8.5), neck_r=u(3.6, 4.3) + 0.6 * build,
        shoulder_half=s * shoulder_half, shoulder_drop=u(2.5, 4.5), torso_len=s * u(49.0, 55.0),
        chest_half=s * (shoulder_half - u(0.5, 2.0)), waist_half=s * (12.0 + 3.0 * build + u(-0.8, 0.8)),
        hip_half=s * hip_half, hip_joint_half=s * (hip_half - thigh_r + 1.5),
        upper_arm=s * u(27.0, 31.0), lower_arm=s * u(24.0, 27.0), hand=s * u(8.0, 10.0),
        arm_r=(u(4.3, 4.9) + 0.8 * build, u(3.6, 4.0) + 0.5 * build, u(2.6, 3.0) + 0.3 * build, u(3.3, 3.9)),
        upper_leg=s * u(42.0, 47.0), lower_leg=s * u(41.0, 46.0), foot=s * u(12.0, 15.0),
        leg_r=(s * thigh_r, u(5.0, 5.8), u(3.5, 4.0), u(3.9, 4.6)),
    )


def sample_identity(rng: np.random.Generator, dress: bool = False) -> Identity:
    """A random person: body proportions, skin, hair, clothes (colours and textures), shoes.

    ``dress=True``: whoever would wear a skirt wears a dress instead (the skirt in the
    top's cloth, one garment with it), from the same random draws, so a seed gives the
    same person either way apart from the dress."""
    body = sample_body(rng)
    t = rng.random() * (len(SKIN_TONES) - 1)
    i = int(t)
    skin = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)] * (t - i)
    hair_style = HAIR_STYLES[rng.choice(4, p=[0.12, 0.33, 0.22, 0.33])]
    sleeves = ("none", "short", "long")[rng.choice(3, p=[0.15, 0.45, 0.40])]
    bottom = ("pants", "shorts", "skirt")[rng.choice(3, p=[0.55, 0.15, 0.30])]
    top = _sample_texture(rng, GARMENT_COLORS, p_solid=0.45)
    pants = _sample_texture(rng, PANTS_COLORS if bottom != "skirt" else GARMENT_COLORS,
                            p_solid=0.8 if bottom == "pants" else 0.55)
    bg = rng.uniform(0.80, 0.97) + rng.normal(0, 0.015, 3)
    return Identity(
        body=body, skin=np.clip(skin + rng.normal(0, 0.015, 3), 0, 1), hair_style=hair_style,
        hair_color=_pick(rng, HAIR_COLORS, 0.03, p=_HAIR_P), hair_len=float(rng.uniform(10.0, 28.0)),
        sleeves=sleeves, sleeve_len=float(rng.uniform(0.35, 0.65) * body.upper_arm), top=top,
        top_hem=float(rng.uniform(-5.0, 12.0)), top_loose=float(rng.uniform(0.0, 2.5)),
        neckline=float(rng.uniform(2.5, 6.0)),
        bottom="dress" if dress and bottom == "skirt" else bottom,
        bottom_len=float(rng.uniform(0.3, 0.75) * body.upper_leg if bottom == "shorts" else rng.uniform(28.0, 62.0)),
        skirt_flare=float(rng.uniform(2.0, 14.0)), pants_loose=float(rng.uniform(0.5, 2.5)), pants=pants,
        shoe_color=_pick(rng, SHOE_COLORS, 0.03),
        lip_color=np.clip(skin * np.array([0.85, 0.55, 0.55]) + np.array([0.08, 0.0, 0.0]), 0, 1),
        background=np.clip(bg, 0, 1),
    )


# --------------------------------------------------------------------------- pose


@dataclass
class Pose:
    """Joint angles (degrees) and placement of one picture of a person.

    Limb angles are abductions from straight down, per side (``r`` / ``l``): positive
    moves the limb away from the body, negative across it; an absolute angle > 180
    points back over the head. ``fore_*`` shrink a segment along its axis
    (foreshortening, 1 = in the image plane).
    """

    view: str = "front"  # "front" | "back"
    lean: float = 0.0
    head_roll: float = 0.0
    arm_upper: dict = field(default_factory=lambda: {"r": 8.0, "l": 8.0})
    arm_lower: dict = field(default_factory=lambda: {"r": 10.0, "l": 10.0})
    fore_arm: dict = field(default_factory=lambda: {"r": (1.0, 1.0), "l": (1.0, 1.0)})
    leg_upper: dict = field(default_factory=lambda: {"r": 4.0, "l": 4.0})
    leg_lower: dict = field(default_factory=lambda: {"r": 3.0, "l": 3.0})
    fore_leg: dict = field(default_factory=lambda: {"r": (1.0, 1.0), "l": (1.0, 1.0)})
    foot_angle: dict = field(default_factory=lambda: {"r": 15.0, "l": 15.0})
    foot_fore: dict = field(default_factory=lambda: {"r": 0.5, "l": 0.5})
    near: str = "r"  # the side turned slightly towards the camera (its limbs overlap the others)
    far_arm_behind: bool = False  # front view: the far arm passes behind the torso
    height_frac: float = 0.88  # standing height / image height
    x_pos: float = 0.0  # -1 .. 1 across the free horizontal space
    margin: float = 0.02  # fraction of the image height below the lowest point (or above the head when zoomed)
    zoom: bool = False  # close-up: the head is placed near the top and the legs may leave the frame


ARM_POSES = ("down", "out", "hip", "front", "raised", "head")
_ARM_P = (0.40, 0.12, 0.16, 0.12, 0.12, 0.08)
LEG_POSES = ("stand", "apart", "cross", "bent")
_LEG_P = (0.45, 0.25, 0.10, 0.20)


def _sample_arm(rng: np.random.Generator, kind: str) -> tuple[float, float, float, float]:
    """(upper abduction, lower abduction, upper foreshortening, lower foreshortening)."""
    u = rng.uniform
    if kind == "down":
        a1 = u(3, 14)
        return a1, a1 + u(-4, 14), u(0.93, 1.0), u(0.85, 1.0)
    if kind == "out":
        a1 = u(20, 45)
        return a1, a1 + u(-10, 25), u(0.9, 1.0), u(0.85, 1.0)
    if kind == "hip":
        return u(30, 50), u(-75, -40), u(0.9, 1.0), u(0.8, 0.95)
    if kind == "front":
        return u(0, 12), u(-110, -80), u(0.8, 0.95), u(0.6, 0.85)
    if kind == "raised":
        a1 = u(100, 165)
        return a1, a1 + u(-30, 20), u(0.9, 1.0), u(0.85, 1.0)
    if kind == "head":
        return u(120, 150), u(205, 235), u(0.9, 1.0), u(0.85, 1.0)
    raise ValueError(f"unknown arm pose {kind!r}")


def _sample_leg(rng: np.random.Generator, kind: str) -> tuple[float, float, float, float]:
    u = rng.uniform
    if kind == "stand":
        t1 = u(1, 7)
        return t1, t1 + u(-4, 2), 1.0, 1.0
    if kind == "apart":
        t1 = u(7, 16)
        return t1, t1 + u(-8, 0), 1.0, 1.0
    if kind == "cross":
        return u(-3, 2), u(-12, -5), u(0.95, 1.0), 1.0
    if kind == "bent":
        t1 = u(-2, 8)
        return t1, t1 + u(-12, 6), u(0.8, 0.95), u(0.82, 0.97)
    raise ValueError(f"unknown leg pose {kind!r}")


def sample_pose(rng: np.random.Generator, view: str | None = None, zoom: bool | None = None,
                p_back: float = 0.25, p_zoom: float = 0.08) -> Pose:
    """A random pose: per-arm / per-leg pose kinds, torso lean, head roll, view and placement."""
    if view is None:
        view = "back" if rng.random() < p_back else "front"
    if view not in ("front", "back"):
        raise ValueError(f"view must be 'front' or 'back', got {view!r}")
    zoom = bool(rng.random() < p_zoom) if zoom is None else bool(zoom)
    near = "r" if rng.random() < 0.5 else "l"
    pose = Pose(view=view, lean=float(rng.uniform(-6, 6)), head_roll=float(rng.uniform(-10, 10)), near=near,
                far_arm_behind=bool(view == "front" and rng.random() < 0.15), zoom=zoom)
    for side in "rl":
        kind = ARM_POSES[rng.choice(len(ARM_POSES), p=_ARM_P)]
        a1, a2, f1, f2 = _sample_arm(rng, kind)
        pose.arm_upper[side], pose.arm_lower[side], pose.fore_arm[side] = a1, a2, (f1, f2)
        kind = LEG_POSES[rng.choice(len(LEG_POSES), p=_LEG_P)]
        if kind == "cross" and side != near:
            kind = "stand"
        t1, t2, g1, g2 = _sample_leg(rng, kind)
        pose.leg_upper[side], pose.leg_lower[side], pose.fore_leg[side] = t1, t2, (g1, g2)
        pose.foot_angle[side] = float(rng.uniform(5, 35))
        pose.foot_fore[side] = float(rng.uniform(0.35, 0.6))
    if zoom:
        pose.height_frac, pose.margin = float(rng.uniform(1.15, 1.45)), float(rng.uniform(0.02, 0.07))
    else:
        pose.height_frac, pose.margin = float(rng.uniform(0.78, 0.95)), float(rng.uniform(0.005, 0.05))
    pose.x_pos = float(rng.uniform(-0.8, 0.8))
    return pose


# --------------------------------------------------------------------------- placed parts


@dataclass
class PlacedPart:
    """One body part placed in the image: ``p = origin + A @ (u, v)``; shape in local cm."""

    name: str
    shape: str  # "capsule" | "head" | "torso" | "trapezoid"
    params: dict
    origin: np.ndarray  # (2,) pixel (x, y)
    A: np.ndarray  # (2, 2) local (u, v) cm -> pixel offset
    depth: float  # larger = nearer the camera (painted later)
    extent: tuple[float, float, float, float]  # local bounding box (u0, u1, v0, v1)

    @property
    def pid(self) -> int:
        return PART_ID[self.name]


def _dir(deg: float) -> np.ndarray:
    """Unit direction ``deg`` degrees from straight down (y down), positive towards +x."""
    r = math.radians(deg)
    return np.array([math.sin(r), math.cos(r)])


def _perp(deg: float) -> np.ndarray:
    """The u axis of a part whose v axis is ``_dir(deg)``: +x when the part hangs down."""
    r = math.radians(deg)
    return np.array([math.cos(r), -math.sin(r)])


def _frame(deg: float, fore: float = 1.0) -> np.ndarray:
    return np.stack([_perp(deg), fore * _dir(deg)], axis=1)  # columns: u axis, v axis


def _capsule(length: float, r0: float, r1: float, fore: float) -> tuple[dict, tuple]:
    rmax = max(r0, r1)
    return ({"L": length, "r0": r0, "r1": r1, "fore": fore},
            (-rmax, rmax, -r0 / fore, length + r1 / fore))


# Painting order (depth, larger = nearer the camera) in a front view; the limbs of the
# side turned towards the camera (Pose.near) get +1 (legs) or +0.5 (arms).
_DEPTH_FRONT = {"hair_back": 0.0, "upper_leg": 2.0, "lower_leg": 2.1, "foot": 2.2, "pelvis": 3.5, "neck": 3.8,
                "torso": 4.0, "head": 5.0, "upper_arm": 6.0, "lower_arm": 6.1, "hand": 6.2}
# back view: the arms are behind the body (a hand on the hip or across the belly is hidden)
_DEPTH_BACK = dict(_DEPTH_FRONT, hair_back=4.5, upper_arm=1.0, lower_arm=1.1, hand=1.2)


def _depth(name: str, pose: Pose) -> float:
    table = _DEPTH_FRONT if pose.view == "front" else _DEPTH_BACK
    if name[:2] in ("r_", "l_"):
        side, kind = name[0], name[2:]
        d = table[kind]
        if kind in ("upper_arm", "lower_arm", "hand"):
            if pose.view == "front" and side != pose.near and pose.far_arm_behind:
                return d - 5.0  # behind the torso and the legs
            return d + (0.5 if side == pose.near else 0.0)
        return d + (1.0 if side == pose.near else 0.0)
    return table[name]


def canonical_figure(identity: Identity, pose: Pose) -> tuple[list[PlacedPart], np.ndarray]:
    """Parts and keypoints in the canonical frame (cm, origin at the hip centre, front view).

    Returns ``(parts, keypoints (18, 2))``; face keypoints are always present here.
    """
    b = identity.body
    lean = pose.lean
    down, across = _dir(lean), _perp(lean)
    hip_c = np.zeros(2)
    neck_base = hip_c - b.torso_len * down
    parts: list[PlacedPart] = []

    def add(name, shape, params_extent, origin, A):
        params, extent = params_extent
        parts.append(PlacedPart(name, shape, params, np.asarray(origin, float), np.asarray(A, float),
                                _depth(name, pose), extent))

    # torso (upper garment) and pelvis (pants or skirt)
    w_top = b.shoulder_half + 0.5  # the corners hide under the round tops of the arms
    hem = identity.top_hem
    widths = [w_top, b.chest_half + identity.top_loose, b.waist_half + identity.top_loose,
              b.hip_half + identity.top_loose, b.hip_half + identity.top_loose + 1.0]
    stops = [0.0, 0.3 * b.torso_len, 0.62 * b.torso_len, b.torso_len, b.torso_len + max(hem, 0.0) + 0.01]
    if hem < 0:
        stops[-1], widths[-1] = b.torso_len + hem, np.interp(b.torso_len + hem, stops[:4], widths[:4])
        stops, widths = stops[:3] + [stops[-1]], widths[:3] + [widths[-1]]
    neck_dip = 0.0 if pose.view == "back" else identity.neckline
    # the shoulder line passes through (shoulder_half, shoulder_drop), where the arm's round top meets it
    drop = b.shoulder_drop * (w_top / b.shoulder_half) ** 2
    add("torso", "torso", ({"stops": stops, "widths": widths, "drop": drop, "dip": neck_dip,
                            "neck_w": b.neck_r * 2.0, "w_top": w_top},
                           (-max(widths), max(widths), -neck_dip, stops[-1])), neck_base, _frame(lean))
    if identity.bottom in ("skirt", "dress"):
        v1, w1 = identity.bottom_len, b.hip_half + identity.skirt_flare
    else:
        v1, w1 = 0.3 * b.upper_leg, b.hip_half + 0.5
    w0 = b.waist_half + 1.0
    add("pelvis", "trapezoid", ({"v0": -12.0, "v1": v1, "w0": w0, "w1": w1, "curve": 2.0},
                                (-max(w0, w1), max(w0, w1), -12.0, v1 + 2.0)), hip_c, _frame(lean))

    # neck and head
    head_deg = lean + pose.head_roll
    chin = neck_base - b.neck_len * down
    head_c = chin - b.head_ry * _dir(head_deg)
    add("neck", "capsule", _capsule(b.neck_len + 7.0, b.neck_r, b.neck_r, 1.0), chin, _frame(lean))
    rx, ry = b.head_rx, b.head_ry
    vol_limit = {"buzz": -0.5, "short": 0.1, "bob": 0.55, "long": 0.6}[identity.hair_style] * ry
    add("head", "head", ({"rx": rx, "ry": ry, "vol": vol_limit}, (-1.1 * rx, 1.1 * rx, -1.1 * ry, ry)),
        head_c, _frame(head_deg))
    if identity.hair_style == "long":
        length = ry + identity.hair_len
        add("hair_back", "capsule", _capsule(length, 1.02 * rx, 1.55 * rx, 1.0), head_c, _frame(head_deg))

    # limbs
    kp = np.full((18, 2), -1.0)
    for side, sign in (("r", -1.0), ("l", 1.0)):
        arm_r = np.add(b.arm_r, [0.5, 0.5, 0.3, 0.0] if identity.sleeves == "long" else 0.0)
        shoulder = neck_base + sign * b.shoulder_half * across + (b.shoulder_drop + 0.9 * arm_r[0]) * down
        a1 = lean * 0.5 + sign * pose.arm_upper[side]
        a2 = lean * 0.5 + sign * pose.arm_lower[side]
        f1, f2 = pose.fore_arm[side]
        elbow = shoulder + f1 * b.upper_arm * _dir(a1)
        wrist = elbow + f2 * b.lower_arm * _dir(a2)
        r = arm_r
        add(f"{side}_upper_arm", "capsule", _capsule(b.upper_arm, r[0], r[1], f1), shoulder, _frame(a1, f1))
        add(f"{side}_lower_arm", "capsule", _capsule(b.lower_arm, r[1], r[2], f2), elbow, _frame(a2, f2))
        add(f"{side}_hand", "capsule", _capsule(b.hand, r[2] * 1.05, r[3], f2), wrist, _frame(a2, f2))

        hip = hip_c + sign * b.hip_joint_half * across
        t1, t2 = sign * pose.leg_upper[side], sign * pose.leg_lower[side]
        g1, g2 = pose.fore_leg[side]
        knee = hip + g1 * b.upper_leg * _dir(t1)
        ankle = knee + g2 * b.lower_leg * _dir(t2)
        r = np.add(b.leg_r, [identity.pants_loose] * 3 + [0.0] if identity.bottom == "pants" else 0.0)
        add(f"{side}_upper_leg", "capsule", _capsule(b.upper_leg, r[0], r[1], g1), hip, _frame(t1, g1))
        add(f"{side}_lower_leg", "capsule", _capsule(b.lower_leg, r[1], r[2], g2), knee, _frame(t2, g2))
        fa, ff = sign * pose.foot_angle[side], pose.foot_fore[side]
        add(f"{side}_foot", "capsule", _capsule(b.foot, r[3] * 0.95, r[3] * 1.05, ff), ankle + 1.5 * _dir(fa),
            _frame(fa, ff))

        j = {"r": (2, 3, 4, 8, 9, 10), "l": (5, 6, 7, 11, 12, 13)}[side]
        kp[list(j)] = [shoulder, elbow, wrist, hip, knee, ankle]

    kp[1] = 0.5 * (kp[2] + kp[5])
    head_A = _frame(head_deg)
    face = {0: (0.0, 0.2), 14: (-0.36, -0.08), 15: (0.36, -0.08), 16: (-0.9, 0.0), 17: (0.9, 0.0)}
    for j, (fu, fv) in face.items():
        kp[j] = head_c + head_A @ np.array([fu * rx, fv * ry])
    parts.sort(key=lambda p: p.depth)
    return parts, kp


def _local_corners(part: PlacedPart) -> np.ndarray:
    u0, u1, v0, v1 = part.extent
    return np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]])


def place_figure(identity: Identity, pose: Pose, size: tuple[int, int]) -> tuple[list[PlacedPart], np.ndarray]:
    """Parts mapped into an ``size = (H, W)`` image and keypoints ``(18, 2)`` in pixels.

    Keypoints are *not* yet filtered (off-image joints keep their coordinates; face
    joints are present in back views too): ``synth_render.render_person`` does that.
    """
    h, w = size
    parts, kp = canonical_figure(identity, pose)
    scale = pose.height_frac * h / identity.body.standing_height
    mirror = np.diag([-1.0 if pose.view == "back" else 1.0, 1.0])
    G = scale * mirror  # canonical cm -> pixels (linear part)
    pts = np.concatenate([(p.origin + _local_corners(p) @ p.A.T) for p in parts]) @ G.T
    x0, x1 = pts[:, 0].min(), pts[:, 0].max()
    y0, y1 = pts[:, 1].min(), pts[:, 1].max()
    if pose.zoom:
        ty = pose.margin * h - y0
    else:
        ty = (1.0 - pose.margin) * h - 0.5 - y1
        if y0 + ty < 1.0:  # raised arms above the frame: move down while the feet stay mostly in
            ty = min(1.0 - y0, h + 0.03 * h - y1)
    free = (w - 1) - (x1 - x0)
    tx = (w - 1) / 2 - (x0 + x1) / 2 + (pose.x_pos * free / 2 if free > 0 else 0.0)
    t = np.array([tx, ty])
    placed = [PlacedPart(p.name, p.shape, p.params, G @ p.origin + t, G @ p.A, p.depth, p.extent) for p in parts]
    return placed, kp @ G.T + t
