"""The weight-free part-affine flow (docs/design.md §7; our replacement for Intr-Flow).

Flow is backward displacement in pixels ``(B, 2, H, W)`` (dx, dy); visibility
``(B, 1, H, W)`` follows the Intr-Flow convention: 0 visible, 1 invisible (occluded or
absent in the source), 2 target background.

The body is cut into 10 parts (:data:`PARTS`: head, torso, upper/lower arms and legs);
each part gets a target->source transform from its keypoints (:func:`part_transforms`:
closed-form least squares — similarity, mirror allowed for front/back views, refined to
a regularised affine for head and torso; limbs scale along their axis by the length
ratio and across it by the body scale); each target pixel takes the transform of the
nearest part its parsing class allows (:data:`CLASS_PARTS`, distances from the skeleton
distance maps of Eq. 2-3); visibility compares the classes at both ends. On the
synthetic people (128×88) the end-point error on visible pixels is ~4% of the
zero-flow error and visibility ~92% correct (benchmarks/bench_flow.py).
"""

from __future__ import annotations

import math

import torch

from spgnet import SPGNetError
from spgnet.parsing import NUM_CLASSES
from spgnet.pose import LIMBS, check_keypoints, is_missing, skeleton_distance_maps
from spgnet.utils.torch_utils import no_autocast


# The 10 body parts. Each target pixel takes the target->source transform of one part.
PARTS: tuple[str, ...] = (
    "head", "torso",
    "r-upper-arm", "r-forearm", "l-upper-arm", "l-forearm",
    "r-thigh", "r-shin", "l-thigh", "l-shin",
)
_P = {name: i for i, name in enumerate(PARTS)}
HEAD, TORSO = _P["head"], _P["torso"]
# OpenPose-18 keypoints of each part; the head includes the neck for a long baseline.
_PART_KEYPOINTS: tuple[tuple[int, ...], ...] = (
    (0, 1, 14, 15, 16, 17), (1, 2, 5, 8, 11),
    (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12), (12, 13),
)
_LIMB_PARTS = tuple(i for i, k in enumerate(_PART_KEYPOINTS) if len(k) == 2)
# Channel of each limb part in pose.skeleton_distance_maps.
_LIMB_CHANNEL = tuple(LIMBS.index(_PART_KEYPOINTS[i]) for i in _LIMB_PARTS)
_TORSO_CHANNELS = tuple(LIMBS.index(limb) for limb in ((1, 2), (1, 5), (1, 8), (1, 11)))  # neck-shoulder/-hip
_TORSO_QUAD = (2, 5, 11, 8)  # r-shoulder, l-shoulder, l-hip, r-hip (a convex outline)
# Where a part's transform comes from when its keypoints are missing (None: the global similarity).
_PARENT_OF = {
    "head": "torso", "torso": None, "r-upper-arm": "torso", "r-forearm": "r-upper-arm", "l-upper-arm": "torso",
    "l-forearm": "l-upper-arm", "r-thigh": "torso", "r-shin": "r-thigh", "l-thigh": "torso", "l-shin": "l-thigh",
}
_PARENT = tuple(-1 if _PARENT_OF[name] is None else _P[_PARENT_OF[name]] for name in PARTS)


def _class_table(table: dict[int, tuple[str, ...]]) -> torch.Tensor:
    out = torch.zeros(NUM_CLASSES, len(PARTS), dtype=torch.bool)
    for label, names in table.items():
        out[label, [_P[n] for n in names]] = True
    return out


_ARMS = ("r-upper-arm", "r-forearm", "l-upper-arm", "l-forearm")
_LEGS = ("r-thigh", "r-shin", "l-thigh", "l-shin")
# (20, 10) bool: the parts a target pixel of each CIHP class may take; the nearest wins.
# "left"/"right" classes are the person's side (CIHP; spgnet.data.synth draws them so).
CLASS_PARTS = _class_table({
    1: ("head",), 2: ("head",), 4: ("head",), 13: ("head",),  # hat, hair, sunglasses, face (and neck)
    3: _ARMS,  # glove
    5: ("torso", *_ARMS), 7: ("torso", *_ARMS), 11: ("torso",),  # upper-clothes (sleeves too), coat, scarf
    6: ("torso", *_ARMS, *_LEGS), 10: ("torso", *_ARMS, *_LEGS),  # dress, jumpsuits
    8: _LEGS, 9: ("torso", *_LEGS), 12: ("torso", *_LEGS),  # socks, pants, skirt (the waist is torso)
    14: ("l-upper-arm", "l-forearm"), 15: ("r-upper-arm", "r-forearm"),  # left / right arm
    16: ("l-thigh", "l-shin"), 17: ("r-thigh", "r-shin"),  # left / right leg
    18: ("l-shin",), 19: ("r-shin",),  # left / right shoe
})
# (20,) the part of a class none of whose parts has keypoints (its transform then comes
# from the fallbacks of part_transforms); background and torso classes: the torso.
_DEFAULT_OF = {"head": (1, 2, 4, 13), "r-upper-arm": (3, 15), "l-upper-arm": (14,),
               "r-thigh": (8, 9, 12, 17), "l-thigh": (16,), "r-shin": (19,), "l-shin": (18,)}
DEFAULT_PART = torch.tensor([next((_P[name] for name, labels in _DEFAULT_OF.items() if c in labels), TORSO)
                             for c in range(NUM_CLASSES)])


def _visible_classes() -> torch.Tensor:
    """``(20, 20)`` bool: a target pixel of class ``i`` is visible at a source pixel of class ``j``.

    The same class, or two classes of one region that parsers (and garments) mix up:
    tops (upper-clothes, dress, coat, jumpsuits, scarf), bottoms (pants, skirt, dress,
    jumpsuits), hat/hair, face/sunglasses, glove/either arm, socks/either leg. Left and
    right arms, legs and shoes stay apart: a left arm landing on the source's right arm
    is hidden there. Background is never visible.
    """
    out = torch.eye(NUM_CLASSES, dtype=torch.bool)
    for group in ((5, 6, 7, 10, 11), (9, 12, 6, 10), (1, 2), (4, 13), (3, 14), (3, 15), (8, 16), (8, 17)):
        idx = torch.tensor(group)
        out[idx[:, None], idx[None, :]] = True
    out[0, 0] = False
    return out


VISIBLE_CLASSES = _visible_classes()
# Classes whose front and back are different surfaces wherever they are drawn (hat, hair,
# sunglasses, dress, scarf, skirt, face): invisible across a front/back view change.
ONE_SIDED_CLASSES = torch.zeros(NUM_CLASSES, dtype=torch.bool)
ONE_SIDED_CLASSES[[1, 2, 4, 6, 11, 12, 13]] = True

_EPS = 1e-6
_MIN_LENGTH = 1.0  # pixels: a shorter target/source limb has no usable direction
_SCALE_RANGE = (1 / 8, 8.0)  # source/target size ratio a similarity may have
_ALONG_RANGE = (1 / 4, 4.0)  # a limb's length ratio, relative to the body's ratio


def _similarity_fit(q: torch.Tensor, p: torch.Tensor, w: torch.Tensor, reflect_prior: torch.Tensor):
    """Weighted least-squares similarity ``p ≈ A q + t``, with or without a mirror.

    ``q, p (B, N, K, 2)`` target / source points, ``w (B, N, K)`` 0/1 weights,
    ``reflect_prior (B, N)`` bool used when a mirror and a rotation fit about equally
    well (always so with two points). Closed-form normal equations (complex least squares):
    rotation ``A = [[a, -b], [b, a]]``, mirror ``A = [[a, b], [b, -a]]``.
    Returns ``A (B, N, 2, 2)``, ``t (B, N, 2)``, ``reflect (B, N)``, ``sqq (B, N)``
    (target spread; 0 when fewer than two distinct points), centred ``Q, P`` and the
    centroids ``qc, pc (B, N, 2)``.
    """
    n = w.sum(-1, keepdim=True).clamp_min(1.0)
    qc = (q * w[..., None]).sum(-2) / n
    pc = (p * w[..., None]).sum(-2) / n
    Q = (q - qc[..., None, :]) * w[..., None]
    P = (p - pc[..., None, :]) * w[..., None]
    qx, qy, px, py = Q[..., 0], Q[..., 1], P[..., 0], P[..., 1]
    sqq = (qx * qx + qy * qy).sum(-1)
    denom = sqq.clamp_min(_EPS)
    a_rot, b_rot = (qx * px + qy * py).sum(-1) / denom, (qx * py - qy * px).sum(-1) / denom
    a_ref, b_ref = (qx * px - qy * py).sum(-1) / denom, (qy * px + qx * py).sum(-1) / denom
    c_rot, c_ref = a_rot.square() + b_rot.square(), a_ref.square() + b_ref.square()
    # the residuals differ by (c_ref - c_rot)·sqq: nearly collinear points (a torso seen
    # only at neck and shoulders) cannot tell a mirror from a rotation, so take the prior
    tol = 0.05 * torch.maximum(c_rot, c_ref) + _EPS
    reflect = torch.where((c_ref - c_rot).abs() <= tol, reflect_prior, c_ref > c_rot)
    a = torch.where(reflect, a_ref, a_rot)
    b = torch.where(reflect, b_ref, b_rot)
    # clamp the scale |c| into range without changing the rotation
    scale = (a.square() + b.square()).sqrt()
    factor = scale.clamp(*_SCALE_RANGE) / scale.clamp_min(_EPS)
    a, b = a * factor, b * factor
    sign = torch.where(reflect, -1.0, 1.0)
    A = torch.stack((torch.stack((a, -sign * b), -1), torch.stack((b, sign * a), -1)), -2)
    t = pc - (A @ qc[..., None])[..., 0]
    return A, t, reflect, sqq, Q, P, qc, pc


def _regularised_affine(A_sim: torch.Tensor, Q: torch.Tensor, P: torch.Tensor, sqq: torch.Tensor,
                        reg: float) -> torch.Tensor:
    """Affine ``A`` minimising ``Σ|A q - p|² + λ‖A - A_sim‖²``, ``λ = reg · sqq / 2``.

    Closed form ``A = (S_pq + λ A_sim)(S_qq + λ I)^-1``. With collinear points the
    direction they do not constrain keeps the similarity's linear part, so a part with
    two or three nearly collinear keypoints never becomes singular.
    """
    S_pq = P.transpose(-1, -2) @ Q  # (B, N, 2, 2) Σ p qᵀ
    S_qq = Q.transpose(-1, -2) @ Q
    lam = (reg * sqq / 2).clamp_min(_EPS)[..., None, None]
    M = S_qq + lam * torch.eye(2, device=Q.device, dtype=Q.dtype)
    det = M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]
    inv = torch.stack((torch.stack((M[..., 1, 1], -M[..., 0, 1]), -1),
                       torch.stack((-M[..., 1, 0], M[..., 0, 0]), -1)), -2) / det[..., None, None]
    return (S_pq + lam * A_sim) @ inv


def _limb_transform(q: torch.Tensor, p: torch.Tensor, body_scale: torch.Tensor, reflect: torch.Tensor):
    """Transform of a two-keypoint limb: ``q, p (B, L, 2, 2)`` target / source endpoints.

    Along the limb it scales by the source/target length ratio (kept within
    ``_ALONG_RANGE`` times the body's ratio, for foreshortened limbs); across it by the
    body scale ``body_scale (B, L)``, since a limb's width does not foreshorten; mirrored
    across when the torso is (``reflect (B, L)``). The first endpoint maps exactly onto
    its source position, and so does the second when the length ratio is not clamped.
    ``A = s_along e_s e_tᵀ + σ s_body n_s n_tᵀ`` with unit directions ``e`` and normals ``n``.
    """
    d_t, d_s = q[..., 1, :] - q[..., 0, :], p[..., 1, :] - p[..., 0, :]
    len_t, len_s = d_t.norm(dim=-1), d_s.norm(dim=-1)
    e_t = d_t / len_t.clamp_min(_EPS)[..., None]
    e_s = d_s / len_s.clamp_min(_EPS)[..., None]
    n_t = torch.stack((-e_t[..., 1], e_t[..., 0]), -1)
    n_s = torch.stack((-e_s[..., 1], e_s[..., 0]), -1)
    along = (len_s / len_t.clamp_min(_EPS)).clamp(body_scale * _ALONG_RANGE[0], body_scale * _ALONG_RANGE[1])
    across = body_scale * torch.where(reflect, -1.0, 1.0)
    A = (along[..., None, None] * e_s[..., :, None] * e_t[..., None, :]
         + across[..., None, None] * n_s[..., :, None] * n_t[..., None, :])
    t = p[..., 0, :] - (A @ q[..., 0, :, None])[..., 0]
    usable = (len_t >= _MIN_LENGTH) & (len_s >= _MIN_LENGTH)
    return A, t, usable


def part_transforms(src_kp: torch.Tensor, tgt_kp: torch.Tensor, affine_reg: float = 0.5):
    """Per-part target->source transforms ``src ≈ A · tgt + t`` from two poses.

    ``src_kp, tgt_kp (B, 18, 2)`` (x, y), missing = negative / non-finite. Only keypoints
    present in *both* poses are used. Head and torso: least-squares similarity (a
    mirror allowed, chosen by the residual: front/back view changes), refined to an
    affine regularised towards it (``affine_reg``); limbs: :func:`_limb_transform`.
    Missing keypoints: a part with one shared keypoint keeps its parent's linear part
    and pins that keypoint; with none it takes its parent's transform (forearm ->
    upper arm -> torso -> global similarity of all shared keypoints -> identity).
    Returns ``A (B, 10, 2, 2)``, ``t (B, 10, 2)`` in :data:`PARTS` order and
    ``available (B, 10)`` (the part's own keypoints determined it).
    """
    b = src_kp.shape[0]
    dev = src_kp.device
    src = src_kp.to(torch.float32)
    tgt = tgt_kp.to(torch.float32)
    shared = ~is_missing(src) & ~is_missing(tgt)  # (B, 18)
    src = torch.where(shared[..., None], src, torch.zeros_like(src))  # no NaN into the sums
    tgt = torch.where(shared[..., None], tgt, torch.zeros_like(tgt))

    # global similarity over all shared keypoints (the root of the fallbacks)
    no_prior = torch.zeros(b, 1, dtype=torch.bool, device=dev)
    w_all = shared.float()[:, None]
    A_g, t_g, refl_g, sqq_g, _, _, qc_g, pc_g = _similarity_fit(tgt[:, None], src[:, None], w_all, no_prior)
    n_g = w_all.sum(-1)
    eye = torch.eye(2, device=dev).expand(b, 1, 2, 2)
    A_g = torch.where((sqq_g >= _MIN_LENGTH**2)[..., None, None], A_g, eye)
    t_g = torch.where((n_g >= 1)[..., None], pc_g - (A_g @ qc_g[..., None])[..., 0], torch.zeros_like(t_g))

    # all parts' own fits at once: keypoint slots padded to 6 with weight 0
    k_max = max(len(k) for k in _PART_KEYPOINTS)
    index = torch.tensor([k + (0,) * (k_max - len(k)) for k in _PART_KEYPOINTS], device=dev)  # (10, 6)
    slot = torch.tensor([[1.0] * len(k) + [0.0] * (k_max - len(k)) for k in _PART_KEYPOINTS], device=dev)
    q, p = tgt[:, index], src[:, index]  # (B, 10, 6, 2)
    w = shared[:, index].float() * slot  # (B, 10, 6)
    n = w.sum(-1)  # (B, 10)
    A_s, t_s, refl, sqq, Q, P, qc, pc = _similarity_fit(q, p, w, refl_g.expand(b, len(PARTS)))
    A_a = _regularised_affine(A_s, Q, P, sqq, affine_reg)
    t_a = pc - (A_a @ qc[..., None])[..., 0]
    own_ok = sqq >= _MIN_LENGTH**2  # at least two distinct shared keypoints

    A = [None] * len(PARTS)
    t = [None] * len(PARTS)
    available = [None] * len(PARTS)

    def settle(i, A_own, t_own, ok, parent_A, parent_t):
        # one shared keypoint (or coincident ones): parent's linear part, pinned at the centroid
        pinned_t = pc[:, i] - (parent_A @ qc[:, i, :, None])[..., 0]
        A[i] = torch.where(ok[:, None, None], A_own, parent_A)
        t[i] = torch.where(ok[:, None], t_own, torch.where((n[:, i] >= 1)[:, None], pinned_t, parent_t))
        available[i] = ok

    for i in (TORSO, HEAD):  # the torso before the head, which falls back to it
        parent = _PARENT[i]
        pA, pt = (A_g[:, 0], t_g[:, 0]) if parent < 0 else (A[parent], t[parent])
        settle(i, A_a[:, i], t_a[:, i], own_ok[:, i], pA, pt)
    sim_scale = (A_s[:, TORSO, 0, 0].square() + A_s[:, TORSO, 1, 0].square()).sqrt()
    glob_scale = (A_g[:, 0, 0, 0].square() + A_g[:, 0, 1, 0].square()).sqrt()
    body_scale = torch.where(own_ok[:, TORSO], sim_scale, glob_scale)
    body_reflect = torch.where(own_ok[:, TORSO], refl[:, TORSO], refl_g[:, 0])

    limbs = list(_LIMB_PARTS)
    A_l, t_l, usable = _limb_transform(q[:, limbs, :2], p[:, limbs, :2],
                                       body_scale[:, None].expand(b, len(limbs)),
                                       body_reflect[:, None].expand(b, len(limbs)))
    for j, i in enumerate(limbs):  # upper limbs come before their lower limbs in PARTS
        parent = _PARENT[i]
        settle(i, A_l[:, j], t_l[:, j], usable[:, j] & (n[:, i] >= 2), A[parent], t[parent])
    return torch.stack(A, 1), torch.stack(t, 1), torch.stack(available, 1)


def parsing_labels(parsing: torch.Tensor, what: str) -> torch.Tensor:
    """``(B, H, W)`` labels, or ``(B, 20, H, W)`` one-hot / logits (argmax) -> ``(B, H, W)`` int64."""
    if parsing.dim() == 4:
        parsing = parsing.argmax(1)
    if parsing.dim() != 3:
        raise SPGNetError(f"part_affine_flow: {what} must be (B, H, W) labels or (B, 20, H, W), "
                          f"got {tuple(parsing.shape)}")
    return parsing.long().clamp(0, NUM_CLASSES - 1)


def _inside_torso(tgt_kp: torch.Tensor, shared: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, H, W)`` bool: pixel inside the target's shoulder-hip quadrilateral (False when a corner is missing)."""
    v = tgt_kp[:, list(_TORSO_QUAD)]  # (B, 4, 2)
    e = v.roll(-1, dims=1) - v  # edge vectors
    xs = torch.arange(w, device=v.device, dtype=v.dtype)
    ys = torch.arange(h, device=v.device, dtype=v.dtype)
    # cross(e, p - v) = e_x (y - v_y) - e_y (x - v_x), separable into a row and a column term
    row = e[..., 0, None] * (ys - v[..., 1, None])  # (B, 4, H)
    col = e[..., 1, None] * (xs - v[..., 0, None])  # (B, 4, W)
    cross = row[..., :, None] - col[..., None, :]  # (B, 4, H, W)
    inside = (cross >= 0).all(1) | (cross <= 0).all(1)
    return inside & shared[:, list(_TORSO_QUAD)].all(1)[:, None, None]


def _part_costs(tgt_kp: torch.Tensor, shared: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, 10, H, W)`` distance of each target pixel to each part (inf: the part has no keypoints).

    Limbs: exact distance to their segment, from :func:`spgnet.pose.skeleton_distance_maps`
    (``exp(κ d)`` inverted; κ small so far pixels do not underflow). Torso: 0 inside the
    shoulder-hip quadrilateral, else the distance to the neck-shoulder / neck-hip lines.
    Head: 0 (only head classes may take it).
    """
    kappa = -1e-3
    kp = torch.where(shared[..., None], tgt_kp, torch.full_like(tgt_kp, -1.0))  # limbs need both poses
    dist = skeleton_distance_maps(kp, (h, w), kappa=kappa).log_() / kappa  # (B, 12, H, W), inf if missing
    torso = dist[:, list(_TORSO_CHANNELS)].amin(1)
    torso = torch.where(_inside_torso(tgt_kp, shared, h, w), torch.zeros_like(torso), torso)
    head = torch.zeros_like(torso)
    limbs = dist[:, list(_LIMB_CHANNEL)]
    return torch.cat((head[:, None], torso[:, None], limbs), 1)


def _assign_parts(tgt_kp: torch.Tensor, tgt_parsing: torch.Tensor, available: torch.Tensor,
                 shared: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` int64 part index (:data:`PARTS`) of every target pixel.

    The nearest part among those the pixel's class allows (:data:`CLASS_PARTS`);
    when none of them has keypoints, the class's default part (:data:`DEFAULT_PART`),
    whose transform then comes from its fallbacks. Background pixels get the torso.
    """
    b, h, w = tgt_parsing.shape
    cost = _part_costs(tgt_kp, shared, h, w)  # (B, 10, H, W)
    cost = torch.where(available[..., None, None] & torch.isfinite(cost), cost, torch.full_like(cost, math.inf))
    allowed = CLASS_PARTS.to(cost.device)[tgt_parsing].permute(0, 3, 1, 2)  # (B, 10, H, W)
    cost = torch.where(allowed, cost, torch.full_like(cost, math.inf))
    best, part = cost.min(1)
    return torch.where(torch.isfinite(best), part, DEFAULT_PART.to(part.device)[tgt_parsing])


@torch.no_grad()
def part_affine_flow(src_kp: torch.Tensor, tgt_kp: torch.Tensor, src_parsing: torch.Tensor,
                     tgt_parsing: torch.Tensor, affine_reg: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight-free flow and visibility from keypoints and parsings (docs/design.md §7).

    ``src_kp, tgt_kp (B, 18, 2)`` (x, y) pixel keypoints of the source and target poses;
    ``src_parsing, tgt_parsing (B, H, W)`` CIHP labels (or ``(B, 20, H, W)`` one-hot /
    logits); at inference ``tgt_parsing`` is the stage-1 prediction. Returns
    ``flow (B, 2, H, W)`` float32 backward displacement (source = p + flow(p)) and
    ``vis (B, 1, H, W)`` float32 in {0 visible, 1 invisible, 2 background}.

    Every target pixel takes the transform (:func:`part_transforms`) of its body part
    (:func:`_assign_parts`); background pixels get zero flow and vis 2. A body pixel is
    visible when the source parsing at the (rounded) sampled point has a compatible
    class (:data:`VISIBLE_CLASSES`) — occluded, mirrored-away or off-image points are
    invisible. Runs on the inputs' device, in float32 (also under autocast), without
    gradients; finite for any missing keypoints.
    """
    tgt = parsing_labels(tgt_parsing, "tgt_parsing")
    src = parsing_labels(src_parsing, "src_parsing").to(tgt.device)
    b, h, w = tgt.shape
    if src.shape != tgt.shape:
        raise SPGNetError(f"part_affine_flow: src_parsing {tuple(src.shape)} and tgt_parsing {tuple(tgt.shape)} differ")
    for name, kp in (("src_kp", src_kp), ("tgt_kp", tgt_kp)):
        check_keypoints(kp, f"part_affine_flow: {name}", ndims=(3,), batch=b)
    src_kp, tgt_kp = src_kp.to(tgt.device, torch.float32), tgt_kp.to(tgt.device, torch.float32)
    with no_autocast(tgt.device):  # pixel coordinates need float32
        return _part_affine_flow(src_kp, tgt_kp, src, tgt, affine_reg)


def _part_affine_flow(src_kp, tgt_kp, src, tgt, affine_reg):
    b, h, w = tgt.shape
    A, t, available = part_transforms(src_kp, tgt_kp, affine_reg)
    shared = ~is_missing(src_kp) & ~is_missing(tgt_kp)
    part = _assign_parts(tgt_kp, tgt, available, shared)  # (B, H, W)

    params = torch.cat((A.flatten(2), t), 2).transpose(1, 2)  # (B, 6, 10): a00 a01 a10 a11 tx ty
    per_pixel = params.gather(2, part.view(b, 1, h * w).expand(b, 6, h * w)).view(b, 6, h, w)
    xs = torch.arange(w, device=tgt.device, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=tgt.device, dtype=torch.float32).view(1, h, 1)
    sx = per_pixel[:, 0] * xs + per_pixel[:, 1] * ys + per_pixel[:, 4]
    sy = per_pixel[:, 2] * xs + per_pixel[:, 3] * ys + per_pixel[:, 5]
    background = tgt == 0
    flow = torch.stack((sx - xs, sy - ys), 1)
    flow = torch.where(background[:, None], torch.zeros_like(flow), flow)

    # visibility: the source class at the nearest pixel of the sampled point
    ix, iy = sx.round(), sy.round()
    on_image = (ix >= 0) & (ix <= w - 1) & (iy >= 0) & (iy <= h - 1)
    flat = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).long().view(b, h * w)
    src_class = src.view(b, h * w).gather(1, flat).view(b, h, w)
    src_class = torch.where(on_image, src_class, torch.zeros_like(src_class))
    visible = VISIBLE_CLASSES.to(tgt.device)[tgt, src_class]
    # a mirrored transform is a front/back view change: on the body's broad parts the
    # other surface is seen (face vs back of the head, shirt front vs back, skirt);
    # thin limbs look the same from both sides
    det = per_pixel[:, 0] * per_pixel[:, 3] - per_pixel[:, 1] * per_pixel[:, 2]
    one_sided = (part == HEAD) | (part == TORSO) | ONE_SIDED_CLASSES.to(tgt.device)[tgt]
    visible &= ~((det < 0) & one_sided)
    vis = torch.where(background, 2.0, torch.where(visible, 0.0, 1.0))[:, None]
    return flow, vis
