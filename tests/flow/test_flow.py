"""Flow (docs/design.md §7): the part-affine flow against exact transforms and the
synthetic people's ground-truth flow; the flow providers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spgnet import SPGNetError
from spgnet.flow import make_flow_provider, part_affine_flow, part_transforms
from spgnet.ops.warp import warp

# -- part-affine flow: exact cases ----------------------------------------------------------

H, W = 128, 88
# an upright person at 128×88, OpenPose-18 (x, y)
TEMPLATE = np.array([
    [44, 20], [44, 32], [32, 34], [28, 52], [26, 68], [56, 34], [60, 52], [62, 68], [37, 66],
    [36, 88], [36, 110], [51, 66], [52, 88], [52, 110], [41, 17], [47, 17], [38, 19], [50, 19],
], dtype=np.float64)
# (label, keypoint a, keypoint b, radius) capsules of a crude CIHP parsing, drawn in order
CAPSULES = [
    (9, 8, 9, 6), (9, 9, 10, 5), (9, 11, 12, 6), (9, 12, 13, 5),  # pants
    (5, 1, 8, 8), (5, 1, 11, 8), (5, 2, 5, 4), (5, 8, 11, 6), (5, 2, 8, 5), (5, 5, 11, 5),  # torso
    (15, 2, 3, 4), (15, 3, 4, 3.5), (14, 5, 6, 4), (14, 6, 7, 3.5),  # right / left arm
    (13, 0, 0, 7), (2, 16, 17, 4),  # face, hair
]


def render_parsing(kp: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Brute-force capsule rasteriser (independent of the module): ``(H, W)`` int64 labels."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    labels = np.zeros((H, W), np.int64)
    for label, a, b, r in CAPSULES:
        pa, pb = kp[a], kp[b]
        d = pb - pa
        t = np.clip(((xs - pa[0]) * d[0] + (ys - pa[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
        dist = np.hypot(xs - pa[0] - t * d[0], ys - pa[1] - t * d[1])
        labels[dist <= r * scale] = label
    return labels


def similarity(angle: float, scale: float, shift, mirror: bool = False) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    A = scale * np.array([[c, -s], [s, c]])
    if mirror:
        A = A @ np.diag([-1.0, 1.0])
    centre = np.array([W / 2, H / 2])
    return A, centre + np.asarray(shift, float) - A @ centre  # about the image centre


def rigid_pair(angle, scale, shift, mirror=False, drop=()):
    """Target = template; source = template moved by a known similarity (source = A·tgt + t)."""
    A, t = similarity(angle, scale, shift, mirror)
    src = TEMPLATE @ A.T + t
    tgt = TEMPLATE.copy()
    tgt[list(drop)] = -1
    batch = dict(
        src_kp=torch.tensor(src, dtype=torch.float32)[None], tgt_kp=torch.tensor(tgt, dtype=torch.float32)[None],
        src_parsing=torch.from_numpy(render_parsing(src, scale))[None],
        tgt_parsing=torch.from_numpy(render_parsing(TEMPLATE))[None],
    )
    return batch, A, t


def expected_flow(A, t) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([A[0, 0] * xs + A[0, 1] * ys + t[0] - xs, A[1, 0] * xs + A[1, 1] * ys + t[1] - ys])


@pytest.mark.parametrize("angle,scale,shift,mirror", [
    (0.2, 1.1, (3, -2), False), (-0.35, 0.8, (-4, 6), False), (0.1, 0.9, (0, 0), True),
])
def test_rigid_motion_is_recovered_exactly(angle, scale, shift, mirror):
    batch, A, t = rigid_pair(angle, scale, shift, mirror)
    As, ts, available = part_transforms(batch["src_kp"], batch["tgt_kp"])
    assert available.all()
    np.testing.assert_allclose(As[0].numpy(), np.broadcast_to(A, (10, 2, 2)), atol=1e-4)
    np.testing.assert_allclose(ts[0].numpy(), np.broadcast_to(t, (10, 2)), atol=2e-3)

    flow, vis = part_affine_flow(batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], batch["tgt_parsing"])
    assert flow.shape == (1, 2, H, W) and vis.shape == (1, 1, H, W)
    fg = batch["tgt_parsing"][0].numpy() > 0
    np.testing.assert_allclose(flow[0].numpy()[:, fg], expected_flow(A, t)[:, fg], atol=2e-3)
    assert (flow[0][:, ~fg] == 0).all()
    v = vis[0, 0].numpy()
    assert (v[~fg] == 2).all() and set(np.unique(v[fg])) <= {0.0, 1.0}
    # the source is the same drawing moved: every pixel away from a class edge is visible,
    # except, in a mirrored (front/back) view, the other surface of torso, face and hair
    labels = batch["tgt_parsing"][0].numpy()
    interior = fg.copy()
    for shift_ in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        interior &= np.roll(labels, shift_, (0, 1)) == labels
    broad = np.isin(labels, [2, 5, 13])
    if mirror:
        assert (v[interior & np.isin(labels, [2, 13])] == 1).all()
        assert (v[interior & broad] == 1).mean() > 0.9  # shirt pixels beside the arms go with the arms
        assert (v[interior & np.isin(labels, [14, 15])] == 0).all()
    else:
        assert (v[interior] == 0).all()
        assert (v[fg] == 0).mean() > 0.9


def test_autocast_does_not_change_the_flow():
    batch, A, t = rigid_pair(0.2, 1.1, (3, -2))
    args = (batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], batch["tgt_parsing"])
    ref_flow, ref_vis = part_affine_flow(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flow, vis = part_affine_flow(*args)
    assert flow.dtype == torch.float32 and torch.equal(flow, ref_flow) and torch.equal(vis, ref_vis)


@pytest.mark.parametrize("drop", [(2, 3, 4), (3, 4), (9, 10), (0, 14, 15, 16, 17), (8, 11)])
@pytest.mark.parametrize("mirror", [False, True])
def test_rigid_motion_survives_missing_keypoints(drop, mirror):
    # missing parts fall back to their parent's transform, which is the same similarity
    # here; without hips the torso (neck + shoulders, collinear) takes the mirror from the
    # whole body
    batch, A, t = rigid_pair(0.25, 1.05, (2, 1), mirror=mirror, drop=drop)
    flow, vis = part_affine_flow(batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], batch["tgt_parsing"])
    fg = batch["tgt_parsing"][0].numpy() > 0
    np.testing.assert_allclose(flow[0].numpy()[:, fg], expected_flow(A, t)[:, fg], atol=2e-3)


@pytest.mark.parametrize("where", ["target", "source", "both"])
def test_all_keypoints_missing_gives_zero_flow(where):
    batch, _, _ = rigid_pair(0.25, 1.05, (2, 1))
    for side in {"target": ["tgt_kp"], "source": ["src_kp"], "both": ["src_kp", "tgt_kp"]}[where]:
        batch[side] = torch.full_like(batch[side], -1.0)
    flow, vis = part_affine_flow(batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], batch["tgt_parsing"])
    assert torch.isfinite(flow).all() and torch.isfinite(vis).all()
    assert flow.abs().max() == 0
    fg = batch["tgt_parsing"] > 0
    assert (vis[:, 0][~fg] == 2).all() and (vis[:, 0][fg] <= 1).all()


def test_nan_and_degenerate_keypoints_stay_finite():
    batch, _, _ = rigid_pair(0.0, 1.0, (0, 0))
    src, tgt = batch["src_kp"].clone(), batch["tgt_kp"].clone()
    src[0, 3] = float("nan")  # a NaN counts as missing
    tgt[0, 9] = tgt[0, 10]  # a zero-length target shin
    src[0, 6] = src[0, 7]  # a zero-length source forearm
    tgt[0, 2] = tgt[0, 5] = tgt[0, 1]  # shoulders on the neck
    flow, vis = part_affine_flow(src, tgt, batch["src_parsing"], batch["tgt_parsing"])
    assert torch.isfinite(flow).all() and torch.isfinite(vis).all()


# -- flow providers -------------------------------------------------------------------------


def test_flow_providers():
    batch, A, t = rigid_pair(0.2, 1.1, (3, -2))
    fg = batch["tgt_parsing"] > 0

    flow, vis = make_flow_provider("none")(batch)
    assert flow.shape == (1, 2, H, W) and flow.abs().max() == 0
    assert torch.equal(vis[:, 0], torch.where(fg, 0.0, 2.0))

    flow, vis = make_flow_provider("part-affine")(batch)
    ref_flow, ref_vis = part_affine_flow(batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], batch["tgt_parsing"])
    assert torch.equal(flow, ref_flow) and torch.equal(vis, ref_vis)
    # a predicted target parsing replaces the batch's: its background decides vis == 2
    predicted = torch.zeros_like(batch["tgt_parsing"])
    predicted[:, :64] = batch["tgt_parsing"][:, :64]
    flow, vis = make_flow_provider("part-affine")(batch, tgt_parsing=predicted)
    assert torch.equal(vis[:, 0] == 2, predicted == 0)
    assert flow[:, :, 64:].abs().max() == 0

    provider = make_flow_provider("file")
    with pytest.raises(SPGNetError, match="use_flow"):
        provider(batch)
    batch["flow"], batch["vis"] = torch.ones(1, 2, H, W), torch.zeros(1, 1, H, W, dtype=torch.uint8)
    flow, vis = provider(batch)
    assert torch.equal(flow, batch["flow"]) and vis.dtype == torch.float32

    with pytest.raises(SPGNetError, match="part-affine"):
        make_flow_provider("intr-flow")


# -- part-affine flow against the synthetic people's ground truth ----------------------------


@pytest.fixture(scope="module")
def synthetic_batch(tmp_path_factory):
    """8 synthetic pairs at 128×88 (front/back views, occlusions) with GT flow + visibility."""
    from torch.utils.data import default_collate

    from spgnet.config import DatasetConfig
    from spgnet.data.dataset import PairDataset
    from spgnet.data.synth import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, 8, 1, size=(H, W), seed=0, progress=False, force=True)
    ds = PairDataset(DatasetConfig(root=str(root), load_size=[H, W], pose_in_loader=False), "train", return_flow=True)
    assert len(ds) == 8
    return default_collate([ds[i] for i in range(len(ds))])


def test_part_affine_flow_matches_synthetic_ground_truth(synthetic_batch):
    b = synthetic_batch
    flow, vis = part_affine_flow(b["src_kp"], b["tgt_kp"], b["src_parsing"], b["tgt_parsing"])
    assert flow.shape == b["flow"].shape and vis.shape == b["vis"].shape
    assert torch.isfinite(flow).all()
    gt_flow, gt_vis = b["flow"], b["vis"][:, 0]
    fg = b["tgt_parsing"] > 0
    visible = gt_vis == 0
    epe = (flow - gt_flow).norm(dim=1)[visible].mean().item()
    zero_epe = gt_flow.norm(dim=1)[visible].mean().item()
    accuracy = ((vis[:, 0] == 0) == visible)[fg].float().mean().item()
    print(f"synthetic 8 pairs 128x88: EPE {epe:.2f} px, zero-flow EPE {zero_epe:.2f} px, "
          f"ratio {epe / zero_epe:.3f}, visibility accuracy {accuracy:.3f}")
    assert zero_epe > 5.0  # the poses really differ
    assert epe <= 0.4 * zero_epe  # measured: 0.81 / 18.2 = 0.044
    assert accuracy >= 0.85  # measured: 0.929
    assert torch.equal(vis[:, 0] == 2, ~fg)
    assert torch.equal(gt_vis == 2, ~fg)  # the references agree on the background


def test_warping_the_source_reproduces_the_target(synthetic_batch):
    # the synthetic colours follow the body parts: where both flows call a pixel visible,
    # the warped source matches the target far better than the unwarped source
    b = synthetic_batch
    flow, vis = part_affine_flow(b["src_kp"], b["tgt_kp"], b["src_parsing"], b["tgt_parsing"])
    mask = ((vis[:, 0] == 0) & (b["vis"][:, 0] == 0))[:, None].expand(-1, 3, -1, -1)
    warped = warp(b["src_image"], flow)
    err = (warped - b["tgt_image"]).abs()[mask].mean().item()
    err_gt = (warp(b["src_image"], b["flow"]) - b["tgt_image"]).abs()[mask].mean().item()
    err_none = (b["src_image"] - b["tgt_image"]).abs()[mask].mean().item()
    assert err < 0.4 * err_none
    assert err < 2.5 * err_gt + 0.02


def test_one_hot_parsing_and_missing_limb_on_synthetic_pairs(synthetic_batch):
    from spgnet.parsing import one_hot

    b = synthetic_batch
    src_kp, tgt_kp = b["src_kp"].clone(), b["tgt_kp"].clone()
    flow, vis = part_affine_flow(src_kp, tgt_kp, one_hot(b["src_parsing"]), one_hot(b["tgt_parsing"]))
    ref_flow, ref_vis = part_affine_flow(src_kp, tgt_kp, b["src_parsing"], b["tgt_parsing"])
    assert torch.equal(flow, ref_flow) and torch.equal(vis, ref_vis)
    tgt_kp[:, [5, 6, 7]] = -1  # the whole left arm
    src_kp[:, [9, 10]] = -1  # and the right shin in the source
    flow, vis = part_affine_flow(src_kp, tgt_kp, b["src_parsing"], b["tgt_parsing"])
    assert torch.isfinite(flow).all()
    assert torch.equal(vis[:, 0] == 2, b["tgt_parsing"] == 0)
