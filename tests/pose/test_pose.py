"""Pose maps (paper Eq. 2-3) against per-pixel brute-force references and hand-computed
values; keypoint transforms; PATN CSV and OpenPose JSON files; skeleton drawing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from spgnet import SPGNetError
from spgnet import pose as P
from spgnet.pose import maps as pose_maps_module
from spgnet.config import PoseConfig

H, W = 23, 17  # small and odd, so per-pixel Python loops stay cheap

# The 12 limbs as docs/design.md §3 lists them, and the OpenPose-18 mirror written out by hand.
DOCUMENTED_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13)]
FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]


# -- independent references -------------------------------------------------------------


def ref_missing(x: float, y: float) -> bool:
    return not (math.isfinite(x) and math.isfinite(y) and x >= 0 and y >= 0)


def ref_segment_distance(px: float, py: float, a, b) -> float:
    """Point-to-segment distance by cases: before a, past b, or the perpendicular foot."""
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    if len2 == 0:
        return math.hypot(px - ax, py - ay)
    dot = (px - ax) * dx + (py - ay) * dy
    if dot <= 0:
        return math.hypot(px - ax, py - ay)
    if dot >= len2:
        return math.hypot(px - bx, py - by)
    return abs((px - ax) * dy - (py - ay) * dx) / math.sqrt(len2)


def ref_maps(kp: np.ndarray, h: int, w: int, sigma=6.0, kappa=-0.1, radius=8.0):
    """Per-pixel loops: heat maps (18), distance maps (12) and disks (18) as float64."""
    heat = np.zeros((18, h, w))
    disk = np.zeros((18, h, w))
    dist = np.zeros((12, h, w))
    for j in range(18):
        x0, y0 = (float(v) for v in kp[j])
        if ref_missing(x0, y0):
            continue
        for y in range(h):
            for x in range(w):
                r2 = (x - x0) ** 2 + (y - y0) ** 2
                heat[j, y, x] = math.exp(-r2 / (2 * sigma**2))
                disk[j, y, x] = float(r2 <= radius**2)
    for m, (ia, ib) in enumerate(DOCUMENTED_LIMBS):
        a, b = [float(v) for v in kp[ia]], [float(v) for v in kp[ib]]
        if ref_missing(*a) or ref_missing(*b):
            continue
        for y in range(h):
            for x in range(w):
                dist[m, y, x] = math.exp(kappa * ref_segment_distance(x, y, a, b))
    return heat, dist, disk


def random_keypoints(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """(18, 2) float32 (x, y): some off the image (right/below), some missing, one degenerate limb."""
    rng = np.random.default_rng(seed)
    kp = np.stack([rng.uniform(0, w + 10, 18), rng.uniform(0, h + 10, 18)], -1).astype(np.float32)
    kp[rng.choice(18, 3, replace=False)] = -1.0
    kp[3] = kp[2]  # limb (2, 3) degenerate (unless 2 is missing, then the limb is missing)
    kp[7, 1] = -1.0  # only y negative: still a missing joint
    return kp


def test_reference_distance_agrees_with_dense_sampling():
    """The case-split reference against brute force over 20001 points of the segment."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        a, b = rng.uniform(-5, 25, 2), rng.uniform(-5, 25, 2)
        ts = np.linspace(0, 1, 20001)[:, None]
        samples = a + ts * (b - a)
        for p in rng.uniform(-10, 30, (10, 2)):
            dense = np.hypot(*(samples - p).T).min()
            step = np.hypot(*(b - a)) / 20000
            assert abs(ref_segment_distance(p[0], p[1], a, b) - dense) <= step + 1e-9


# -- pose maps vs the references --------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maps_match_per_pixel_reference(seed):
    kp = random_keypoints(seed)
    heat_ref, dist_ref, disk_ref = ref_maps(kp, H, W, sigma=4.0, kappa=-0.15, radius=5.0)
    heat = P.keypoint_heatmaps(kp, (H, W), sigma=4.0)
    dist = P.skeleton_distance_maps(kp, (H, W), kappa=-0.15)
    disk = P.keypoint_disks(kp, (H, W), radius=5.0)
    assert heat.shape == (1, 18, H, W) and dist.shape == (1, 12, H, W) and disk.shape == (1, 18, H, W)
    assert heat.dtype == dist.dtype == disk.dtype == torch.float32
    np.testing.assert_allclose(heat[0].numpy(), heat_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dist[0].numpy(), dist_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(disk[0].numpy(), disk_ref)
    # the missing joints really gave zero channels
    assert (heat[0, 7] == 0).all() and (disk[0, 7] == 0).all()
    assert (dist[0, 5] == 0).all()  # limb (6, 7)


def test_batch_with_row_chunks_matches_reference(monkeypatch):
    """A batch at once, with the CPU path forced into 5-row chunks (23 = 4 * 5 + 3)."""
    kps = np.stack([random_keypoints(s) for s in range(3, 6)])
    monkeypatch.setattr(pose_maps_module, "CPU_CHUNK_ELEMENTS", 3 * 12 * W * 5)
    maps = P.pose_maps(torch.from_numpy(kps), (H, W))
    assert maps.shape == (3, 30, H, W)
    for i, kp in enumerate(kps):
        heat_ref, dist_ref, _ = ref_maps(kp, H, W)
        np.testing.assert_allclose(maps[i].numpy(), np.concatenate([heat_ref, dist_ref]), rtol=1e-5, atol=1e-6)


def horizontal_limb() -> np.ndarray:
    kp = np.full((18, 2), -1.0, np.float32)
    kp[1] = (2, 5)  # neck
    kp[2] = (12, 5)  # r-shoulder: limb 0 = (1, 2) runs along y = 5 from x = 2 to 12
    return kp


def test_hand_computed_distance_values():
    m = P.skeleton_distance_maps(horizontal_limb(), (20, 24))[0]
    assert float(m[0, 5, 7]) == 1.0  # on the limb
    assert float(m[0, 5, 2]) == 1.0 and float(m[0, 5, 12]) == 1.0  # the endpoints
    assert float(m[0, 15, 7]) == pytest.approx(math.exp(-1.0), rel=1e-6)  # 10 px below
    assert float(m[0, 5, 20]) == pytest.approx(math.exp(-0.8), rel=1e-6)  # 8 px past b
    assert float(m[0, 5, 0]) == pytest.approx(math.exp(-0.2), rel=1e-6)  # 2 px before a
    assert float(m[0, 8, 16]) == pytest.approx(math.exp(-0.5), rel=1e-6)  # 3-4-5 from b
    assert (m[1:] == 0).all()  # every other limb lacks an endpoint


def test_hand_computed_heat_disk_and_degenerate_limb():
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0] = (4, 6)
    kp[5] = kp[6] = (3, 4)  # limb (5, 6) degenerate: distance to the point
    heat = P.keypoint_heatmaps(kp, (20, 24))[0]
    assert float(heat[0, 6, 4]) == 1.0
    assert float(heat[0, 6, 10]) == pytest.approx(math.exp(-0.5), rel=1e-6)  # 6 px = sigma
    assert (heat[1:5] == 0).all() and (heat[7:] == 0).all()
    disk = P.keypoint_disks(kp, (20, 24), radius=2)[0]
    assert int(disk[0].sum()) == 13  # lattice points with x^2 + y^2 <= 4
    dist = P.skeleton_distance_maps(kp, (20, 24))[0]
    assert float(dist[4, 4, 3]) == 1.0
    assert float(dist[4, 8, 6]) == pytest.approx(math.exp(-0.5), rel=1e-6)  # 5 px away
    assert (dist[:4] == 0).all() and (dist[5:] == 0).all()


def test_off_image_keypoints_still_shape_the_maps():
    kp = np.full((18, 2), -1.0, np.float32)
    kp[1], kp[2] = (30, 5), (40, 5)  # limb (1, 2) entirely right of a 10-px-wide image
    kp[0] = (12, 3)
    maps = P.pose_maps(kp, (8, 10))[0]
    assert float(maps[0, 3, 9]) == pytest.approx(math.exp(-9 / 72), rel=1e-6)
    assert float(maps[18, 5, 9]) == pytest.approx(math.exp(-2.1), rel=1e-6)  # 21 px from a


def test_numpy_torch_and_unbatched_inputs_agree():
    kp = random_keypoints(7)
    ref = P.pose_maps(kp, (H, W))
    assert ref.device.type == "cpu" and ref.shape == (1, 30, H, W)
    for other in (kp.astype(np.float64), kp[None], torch.from_numpy(kp), torch.from_numpy(kp)[None], kp.tolist()):
        assert torch.equal(P.pose_maps(other, (H, W)), ref)
    two = P.pose_maps(np.stack([kp, random_keypoints(8)]), (H, W))
    assert torch.equal(two[:1], ref)


def test_pose_maps_layout_kinds_and_config():
    kp = random_keypoints(9)
    maps = P.pose_maps(kp, (H, W), sigma=3.0, kappa=-0.2)
    heat_ref, dist_ref, _ = ref_maps(kp, H, W, sigma=3.0, kappa=-0.2)
    np.testing.assert_allclose(maps[0, :18].numpy(), heat_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps[0, 18:].numpy(), dist_ref, rtol=1e-5, atol=1e-6)
    cfg = PoseConfig(sigma=3.0, kappa=-0.2)
    assert torch.equal(P.pose_maps_from_config(kp, (H, W), cfg), maps)
    disk_cfg = PoseConfig(kind="disk", disk_radius=4.0)
    disks = P.pose_maps_from_config(kp, (H, W), disk_cfg)
    assert disks.shape == (1, disk_cfg.channels, H, W) == (1, 18, H, W)
    np.testing.assert_array_equal(disks[0].numpy(), ref_maps(kp, H, W, radius=4.0)[2])
    assert P.pose_channels("heatmap+distance") == PoseConfig().channels == 30


@pytest.mark.parametrize(
    "call",
    [
        lambda: P.pose_maps(np.zeros((17, 2)), (H, W)),
        lambda: P.pose_maps(np.zeros((2, 2, 18, 2)), (H, W)),
        lambda: P.pose_maps(np.zeros((18, 2)), (0, W)),
        lambda: P.pose_maps(np.zeros((18, 2)), (H, W), kind="bones"),
        lambda: P.keypoint_heatmaps(np.zeros((18, 2)), (H, W), sigma=0),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(SPGNetError):
        call()


# -- keypoint helpers ---------------------------------------------------------------------


def test_constants():
    assert list(P.LIMBS) == DOCUMENTED_LIMBS
    assert len(P.KEYPOINT_NAMES) == 18 and P.KEYPOINT_NAMES[0] == "nose" and P.KEYPOINT_NAMES[13] == "l-ankle"
    assert list(P.FLIP_INDEX) == FLIP_PERM
    # the mirror, derived from the names: r-X <-> l-X
    swapped = [n.replace("r-", "#").replace("l-", "r-").replace("#", "l-") for n in P.KEYPOINT_NAMES]
    assert [P.KEYPOINT_NAMES.index(n) for n in swapped] == FLIP_PERM
    assert set(P.LIMBS) <= set(P.SKELETON_EDGES) and len(P.SKELETON_EDGES) == 17
    assert {j for e in P.SKELETON_EDGES for j in e} == set(range(18))


def test_is_missing():
    kp = np.zeros((18, 2), np.float32)
    kp[1] = (-1, 5)
    kp[2] = (5, -0.5)
    kp[3] = (np.nan, 2)
    expect = np.zeros(18, bool)
    expect[1:4] = True
    np.testing.assert_array_equal(P.is_missing(kp), expect)
    np.testing.assert_array_equal(P.is_missing(torch.from_numpy(kp)).numpy(), expect)


def test_transform_keypoints_by_hand():
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0] = (10, 20)
    kp[1] = (0, 0)
    kp[2] = (3, 1)
    out = P.transform_keypoints(kp, (0.75, 0.5))
    assert out[0].tolist() == [7.375, 9.75]  # (10.5 * 0.75 - 0.5, 20.5 * 0.5 - 0.5)
    assert out[1].tolist() == [0.0, 0.0]  # -0.125 / -0.25 are still on pixel 0
    assert (out[3:] == -1).all() and out.dtype == np.float32
    shifted = P.transform_keypoints(kp, (1.0, 1.0), (2.0, -2.0))
    assert shifted[0].tolist() == [12.0, 18.0]
    assert shifted[1].tolist() == [-1.0, -1.0]  # 2 px above the image: not representable
    t = P.transform_keypoints(torch.from_numpy(kp), (0.75, 0.5))
    assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), out)


def test_flip_keypoints():
    kp = random_keypoints(11, 40, 30)
    kp = np.where(P.is_missing(kp)[:, None], -1, np.minimum(kp, 29)).astype(np.float32)
    out = P.flip_keypoints(kp, 30)
    for j in range(18):
        src = kp[FLIP_PERM[j]]
        if (src < 0).any():
            assert out[j].tolist() == [-1.0, -1.0]
        else:
            assert out[j].tolist() == [29 - src[0], src[1]]
    np.testing.assert_allclose(P.flip_keypoints(out, 30), kp, atol=1e-5)  # float32 rounding of 29 - x
    np.testing.assert_array_equal(P.flip_keypoints(torch.from_numpy(kp[None]), 30)[0].numpy(), out)
    # maps of the flipped pose = mirrored maps with channels permuted (limbs map to their mirror)
    maps, flipped = P.pose_maps(kp, (40, 30)), P.pose_maps(out, (40, 30))
    limb_perm = [DOCUMENTED_LIMBS.index(tuple(FLIP_PERM[i] for i in limb)) for limb in DOCUMENTED_LIMBS]
    perm = FLIP_PERM + [18 + m for m in limb_perm]
    np.testing.assert_allclose(flipped[0].numpy(), maps[0, perm].flip(-1).numpy(), atol=1e-5)


# -- PATN annotation CSV ------------------------------------------------------------------

PATN_TEXT = (
    "name:keypoints_y:keypoints_x\n"
    "fashionWOMENDressesid0000262902_3back.jpg: [12, 40, 41, 80, -1, 39, 78, 110, 130, 190, 245, 131, 192, 244, -1, -1, 10, -1]:"
    " [88, 89, 60, 55, -1, 117, 121, 125, 70, 68, 66, 105, 108, 110, -1, -1, 79, -1]\n"
    "\n"
    "b.png:[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,-1]:[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,-1,17]\n"
)


def test_read_handwritten_patn_file(tmp_path):
    path = tmp_path / "annotation-test.csv"
    path.write_text(PATN_TEXT)
    rows = P.read_annotation_csv(path)
    assert list(rows) == ["fashionWOMENDressesid0000262902_3back.jpg", "b.png"]
    a = rows["fashionWOMENDressesid0000262902_3back.jpg"]
    assert a.shape == (18, 2) and a.dtype == np.float32
    assert a[0].tolist() == [88, 12] and a[13].tolist() == [110, 244]  # (x, y) from y-list, x-list
    assert a[4].tolist() == [-1, -1] and a[17].tolist() == [-1, -1]
    b = rows["b.png"]
    assert b[3].tolist() == [3, 4]
    assert b[16].tolist() == [-1, -1] and b[17].tolist() == [-1, -1]  # only one of x / y was -1
    # CRLF, a byte-order mark and a header naming x first
    path.write_bytes(b"\xef\xbb\xbf" + PATN_TEXT.replace("\n", "\r\n").encode())
    assert all(np.array_equal(P.read_annotation_csv(path)[k], rows[k]) for k in rows)
    swapped = "name:keypoints_x:keypoints_y\nb.png:[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]:[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18]\n"
    path.write_text(swapped)
    assert P.read_annotation_csv(path)["b.png"][3].tolist() == [3, 4]


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    annotations = {}
    for i in range(5):
        kp = rng.uniform(0, 250, (18, 2)).astype(np.float32)
        kp[rng.choice(18, 4, replace=False)] = -1
        annotations[f"img_{i}.jpg"] = kp
    path = tmp_path / "sub" / "annotation-train.csv"
    P.write_annotation_csv(path, annotations)
    lines = path.read_text().splitlines()
    assert lines[0] == "name:keypoints_y:keypoints_x" and len(lines) == 6
    name, ys, xs = lines[1].split(": ")  # PATN style: a space after each colon
    assert name == "img_0.jpg"
    expect = np.where(annotations[name] < 0, -1, np.rint(annotations[name])).astype(int)
    assert json.loads(ys) == expect[:, 1].tolist() and json.loads(xs) == expect[:, 0].tolist()
    back = P.read_annotation_csv(path)
    assert list(back) == list(annotations)
    for k, kp in annotations.items():
        np.testing.assert_array_equal(back[k], np.where(kp < 0, -1, np.rint(kp)))
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_malformed_rows_are_all_reported_with_line_numbers(tmp_path):
    good = "[" + ", ".join(["5"] * 18) + "]"
    text = "\n".join(
        [
            "name:keypoints_y:keypoints_x",  # 1
            f"ok1.jpg: {good}: {good}",  # 2
            f"two_fields.jpg: {good}",  # 3
            f"bad_json.jpg: [1, 2, oops]: {good}",  # 4
            f"short.jpg: {good}: [1, 2, 3]",  # 5
            "",  # 6
            f'text.jpg: {good}: [{", ".join(["1"] * 17)}, "x"]',  # 7
            f"ok2.jpg: {good}: {good}",  # 8
            f": {good}: {good}",  # 9
        ]
    )
    path = tmp_path / "annotation-train.csv"
    path.write_text(text + "\n")
    rows, problems = P.parse_annotation_rows(path)
    assert sorted(rows) == ["ok1.jpg", "ok2.jpg"]
    assert [line for line, _ in problems] == [3, 4, 5, 7, 9]
    messages = dict(problems)
    assert "3 ':'-separated fields" in messages[3] and "found 2" in messages[3]
    assert "bad_json.jpg" in messages[4] and "JSON" in messages[4]
    assert "3 values, expected 18" in messages[5]
    assert '"x"' in messages[7]
    with pytest.raises(SPGNetError, match=r"annotation-train\.csv line 3: .*and 4 more"):
        P.read_annotation_csv(path)
    with pytest.raises(SPGNetError, match="nowhere.csv: annotation file not found"):
        P.read_annotation_csv(tmp_path / "nowhere.csv")


def test_conflicting_duplicate_row(tmp_path):
    row = "a.jpg: [" + ", ".join(["5"] * 18) + "]: [" + ", ".join(["6"] * 18) + "]"
    path = tmp_path / "ann.csv"
    path.write_text(f"name:keypoints_y:keypoints_x\n{row}\n{row}\n{row.replace('6', '7')}\n")
    rows, problems = P.parse_annotation_rows(path)
    assert rows["a.jpg"][0].tolist() == [6, 5]
    assert [line for line, _ in problems] == [4] and "line 2" in problems[0][1]


# -- OpenPose JSON ------------------------------------------------------------------------


def test_openpose_json_by_hand_and_round_trip(tmp_path):
    triplets = []
    for j in range(18):
        triplets += [10.0 + j, 20.5 + j, 0.9]
    triplets[3 * 4 + 2] = 0.0  # joint 4: confidence 0
    triplets[3 * 9 : 3 * 9 + 2] = [0.0, 0.0]  # joint 9: at (0, 0)
    path = tmp_path / "pose.json"
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": triplets}, {"pose_keypoints_2d": []}]}))
    kp = P.read_openpose_json(path)
    assert kp.shape == (18, 2) and kp.dtype == np.float32
    assert kp[0].tolist() == [10.0, 20.5] and kp[17].tolist() == [27.0, 37.5]
    assert kp[4].tolist() == [-1, -1] and kp[9].tolist() == [-1, -1]
    out = tmp_path / "again.json"
    P.write_openpose_json(out, kp)
    doc = json.loads(out.read_text())
    values = doc["people"][0]["pose_keypoints_2d"]
    assert len(values) == 54 and values[3 * 4 : 3 * 4 + 3] == [0, 0, 0] and values[2] == 1.0
    np.testing.assert_array_equal(P.read_openpose_json(out), kp)


def test_openpose_body25_is_mapped_to_coco18(tmp_path):
    values = []
    for j in range(25):
        values += [100.0 + j, 200.0 + j, 1.0]
    path = tmp_path / "b25.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": values}]}))
    kp = P.read_openpose_json(path)
    assert kp[7].tolist() == [107, 207]  # l-wrist = BODY_25 7
    assert kp[8].tolist() == [109, 209]  # r-hip = BODY_25 9 (8 is mid-hip)
    assert kp[17].tolist() == [118, 218]  # l-ear = BODY_25 18


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"people": []}', "no person detected"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "has 3 values"),
        ('{"people": [{}]}', "no 'pose_keypoints_2d'"),
        ("[1, 2]", "no 'people' list"),
    ],
)
def test_openpose_json_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(SPGNetError, match=f"broken.json: .*{message}"):
        P.read_openpose_json(path)


# -- drawing ----------------------------------------------------------------------------------


def segment_distance_field(h: int, w: int, a, b) -> np.ndarray:
    """Vectorised (numpy) distance of every pixel centre to segment [a, b], for the drawing checks."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    len2 = max(float(d @ d), 1e-12)
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / len2, 0, 1)
    return np.hypot(xs - a[0] - t * d[0], ys - a[1] - t * d[1])


def test_draw_skeleton_touches_only_the_skeleton():
    h, w = 64, 48
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    before = image.copy()
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0], kp[1], kp[2], kp[3] = (24, 8), (24, 18), (14, 20), (10, 34)
    kp[5] = (34, 20)  # edge (1, 5) drawn; (5, 6) not, as 6 is missing
    drawn = P.draw_skeleton(image, kp, radius=3, thickness=2)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert np.array_equal(image, before)  # input untouched
    near = np.full((h, w), np.inf)
    for a, b in P.SKELETON_EDGES:
        if (kp[a] >= 0).all() and (kp[b] >= 0).all():
            near = np.minimum(near, segment_distance_field(h, w, kp[a], kp[b]))
    for j in range(18):
        if (kp[j] >= 0).all():
            near = np.minimum(near, segment_distance_field(h, w, kp[j], kp[j]))
    changed = (drawn != image).any(-1)
    assert not changed[near > 4.5].any()
    assert changed.sum() > 100
    # joints are dots in their OpenPose colour, limbs in theirs
    assert drawn[8, 24].tolist() == [255, 0, 0]  # joint 0 (nose)
    assert drawn[34, 10].tolist() == P.OPENPOSE_COLORS[3].tolist()
    assert drawn[27, 12].tolist() == P.OPENPOSE_COLORS[2].tolist()  # middle of edge (2, 3), limb index 2
    canvas = P.render_pose_image(kp, (h, w))
    assert canvas.shape == (h, w, 3) and canvas.dtype == np.uint8
    lit = canvas.any(-1)
    assert lit.sum() > 40 and not lit[near > 6.5].any()  # default sizes at 64 px: radius 1, width 1


def test_pose_maps_into_reused_buffer_equals_fresh_output():
    from spgnet import SPGNetError
    from spgnet.pose import pose_maps

    g = torch.Generator().manual_seed(3)
    kp = torch.rand(2, 18, 2, generator=g) * torch.tensor([16.0, 20.0])
    kp[0, 4] = -1
    buf = torch.full((2, 30, 21, 17), float("nan"))
    out = pose_maps(kp, (21, 17), out=buf)
    assert out.data_ptr() == buf.data_ptr()
    assert torch.equal(out, pose_maps(kp, (21, 17)))
    with pytest.raises(SPGNetError, match="out="):
        pose_maps(kp, (21, 17), out=torch.empty(2, 30, 21, 16))
