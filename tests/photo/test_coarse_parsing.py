"""Coarse parsing from a mask and keypoints, on hand-drawn stick people: labels at points
whose body part is known by construction, full coverage of the mask, nothing outside it,
left/right by the person's sides, mirror symmetry, and the fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, polygon

from spgnet import SPGNetError
from spgnet.photo.coarse_parsing import _segment_distances, coarse_parsing
from spgnet.parsing import LABEL_INDEX, flip_labels
from spgnet.pose import KEYPOINT_NAMES, flip_keypoints

H, W = 200, 120
L = LABEL_INDEX

# A frontal person: its right side on the image's left (x, y).
FRONT = {
    "nose": (60, 30), "neck": (60, 50), "r-shoulder": (40, 52), "r-elbow": (30, 80), "r-wrist": (26, 105),
    "l-shoulder": (80, 52), "l-elbow": (90, 80), "l-wrist": (94, 105), "r-hip": (48, 110), "r-knee": (47, 145),
    "r-ankle": (46, 178), "l-hip": (72, 110), "l-knee": (73, 145), "l-ankle": (74, 178),
    "r-eye": (55, 25), "l-eye": (65, 25), "r-ear": (49, 28), "l-ear": (71, 28),
}


# The same person seen from the back: no face joints (BACK_NO_HANDS: the hands hidden too).
BACK = {k: v for k, v in FRONT.items() if k not in ("nose", "r-eye", "l-eye", "r-ear", "l-ear")}
BACK_NO_HANDS = {k: v for k, v in BACK.items() if k not in ("r-wrist", "l-wrist")}


def keypoints(joints: dict) -> np.ndarray:
    kp = np.full((18, 2), -1.0, np.float32)
    for name, xy in joints.items():
        kp[KEYPOINT_NAMES.index(name)] = xy
    return kp


def draw_person(joints: dict, hands: bool = False) -> np.ndarray:
    """A silhouette drawn with skimage: head disk, torso polygon, thick limbs, feet (and a
    hand below each wrist with ``hands``)."""
    mask = np.zeros((H, W), bool)

    def thick(a, b, r):
        for t in np.linspace(0, 1, 60):
            x, y = (1 - t) * np.asarray(joints[a], float) + t * np.asarray(joints[b], float)
            mask[disk((y, x), r, shape=mask.shape)] = True

    mask[disk((28, 60), 17, shape=mask.shape)] = True
    corners = [joints[n] for n in ("r-shoulder", "l-shoulder", "l-hip", "r-hip")]
    rr, cc = polygon([c[1] for c in corners], [c[0] for c in corners], shape=mask.shape)
    mask[rr, cc] = True
    thick("neck", "nose", 6)
    for a, b, r in (("r-shoulder", "r-elbow", 6), ("r-elbow", "r-wrist", 5), ("l-shoulder", "l-elbow", 6),
                    ("l-elbow", "l-wrist", 5), ("r-hip", "r-knee", 8), ("r-knee", "r-ankle", 6),
                    ("l-hip", "l-knee", 8), ("l-knee", "l-ankle", 6)):
        thick(a, b, r)
    for side in ("r", "l"):
        x, y = joints[f"{side}-ankle"]
        mask[int(y) : int(y) + 12, int(x) - 6 : int(x) + 7] = True  # a foot below the ankle
    if hands:
        for side in ("r", "l"):
            x, y = joints[f"{side}-wrist"]
            mask[disk((y + 7, x), 5, shape=mask.shape)] = True
    return mask


def label_at(labels, x, y):
    return int(labels[int(round(y)), int(round(x))])


def test_segment_distance_matches_dense_sampling():
    segments = np.array([[[3.0, 4.0], [17.5, 9.0]], [[10.0, 2.0], [10.0, 2.0]], [[-5.0, 30.0], [8.0, 12.0]]])
    got = _segment_distances(segments, 25, 21)
    t = np.linspace(0, 1, 4001)
    ys, xs = np.mgrid[0:25, 0:21]
    for s, (a, b) in enumerate(segments):
        pts = a[None] + t[:, None] * (b - a)[None]  # dense points on the segment
        ref = np.sqrt(((xs[..., None] - pts[:, 0]) ** 2 + (ys[..., None] - pts[:, 1]) ** 2).min(-1))
        np.testing.assert_allclose(got[s], ref, atol=5e-3)


def test_frontal_person_parts():
    mask, kp = draw_person(FRONT), keypoints(FRONT)
    labels = coarse_parsing(mask, kp)
    assert labels.shape == (H, W) and labels.dtype == np.uint8
    assert (labels[~mask] == 0).all()
    assert (labels[mask] > 0).all()  # every mask pixel has a part
    assert set(np.unique(labels)) <= {0, 2, 5, 9, 13, 14, 15, 18, 19}
    assert label_at(labels, 60, 30) == L["face"]
    assert label_at(labels, 60, 13) == L["hair"]  # top of the head
    assert label_at(labels, 60, 80) == L["upper-clothes"]
    assert label_at(labels, 28, 92) == L["right-arm"]  # the person's right forearm, image left
    assert label_at(labels, 92, 92) == L["left-arm"]
    assert label_at(labels, 47, 128) == L["pants"] and label_at(labels, 73, 160) == L["pants"]
    assert label_at(labels, 46, 186) == L["right-shoe"]
    assert label_at(labels, 74, 186) == L["left-shoe"]
    # every part is present
    for name in ("face", "hair", "upper-clothes", "pants", "left-arm", "right-arm", "left-shoe", "right-shoe"):
        assert (labels == L[name]).sum() > 20, name


def test_mirror_symmetry():
    """Mirroring image and keypoints mirrors the parsing with left/right classes swapped."""
    mask, kp = draw_person(FRONT), keypoints(FRONT)
    labels = coarse_parsing(mask, kp)
    mirrored = coarse_parsing(mask[:, ::-1], flip_keypoints(kp, W))
    expected = flip_labels(labels[:, ::-1])
    assert (mirrored == expected).mean() > 0.995


def test_arm_in_front_of_the_torso_stays_arm():
    joints = dict(FRONT, **{"r-elbow": (45, 95), "r-wrist": (68, 88)})
    labels = coarse_parsing(draw_person(FRONT), keypoints(joints))
    assert label_at(labels, 56, 92) == L["right-arm"]  # forearm across the belly
    assert label_at(labels, 75, 70) == L["upper-clothes"]  # the chest away from the arm


def test_back_view_head_is_hair():
    labels = coarse_parsing(draw_person(FRONT), keypoints(BACK))
    assert label_at(labels, 60, 28) == L["hair"]
    assert not (labels == L["face"]).any()


def test_half_body_without_hips_has_no_pants():
    joints = {k: v for k, v in FRONT.items() if k[2:] not in ("hip", "knee", "ankle")}
    mask = draw_person(FRONT)
    mask[120:] = False  # cut at the waist
    labels = coarse_parsing(mask, keypoints(joints))
    assert (labels[mask] > 0).all() and (labels[~mask] == 0).all()
    assert not np.isin(labels, [L["pants"], L["left-shoe"], L["right-shoe"]]).any()
    assert label_at(labels, 60, 105) == L["upper-clothes"]  # where pants would begin


def test_fallbacks_and_errors():
    mask = draw_person(FRONT)
    labels = coarse_parsing(mask, np.full((18, 2), -1.0))
    assert (labels[mask] == L["upper-clothes"]).all() and (labels[~mask] == 0).all()
    assert (coarse_parsing(np.zeros((H, W), bool), keypoints(FRONT)) == 0).all()
    with pytest.raises(SPGNetError):
        coarse_parsing(mask, np.zeros((17, 2)))
    with pytest.raises(SPGNetError):
        coarse_parsing(mask[None], keypoints(FRONT))


# -- the cases the first coarse parsing got wrong on real photos ----------------------------


def test_thighs_without_detected_knees_are_legs_not_arms():
    mask = draw_person(FRONT)
    for dropped in (("r-knee", "l-knee"), ("r-knee", "l-knee", "r-ankle", "l-ankle")):
        joints = {k: v for k, v in FRONT.items() if k not in dropped}
        labels = coarse_parsing(mask, keypoints(joints))
        for x, y in ((47, 128), (73, 128), (47, 160), (73, 160)):  # thighs and shins
            assert label_at(labels, x, y) == L["pants"], (dropped, x, y)
        legs = mask.copy()
        legs[:118] = False  # everything below the hips
        assert not np.isin(labels[legs], [L["left-arm"], L["right-arm"]]).any()


def test_waist_sits_at_the_hips():
    """Clothes of the upper body reach the hip joints: 90 % of the way down is still upper-clothes."""
    labels = coarse_parsing(draw_person(FRONT), keypoints(FRONT))
    y = 52 + 0.9 * (110 - 52)
    for x in (54, 60, 66):
        assert label_at(labels, x, y) == L["upper-clothes"]
    torso = np.zeros((H, W), bool)
    rr, cc = polygon([54, 54, 108, 108], [45, 75, 70, 50], shape=torso.shape)  # well inside the torso
    torso[rr, cc] = True
    assert (labels[torso] == L["upper-clothes"]).mean() > 0.97


def test_no_face_on_the_chest():
    """Face pixels below the chin stay within the neck: the collar and the chest are clothing."""
    mask = draw_person(FRONT)
    rr, cc = polygon([52, 40, 40, 52], [36, 52, 68, 84], shape=mask.shape)  # shoulders' slope up to the neck
    mask[rr, cc] = True
    labels = coarse_parsing(mask, keypoints(FRONT))
    ys, xs = np.nonzero(labels == L["face"])
    chin = 25 + 2.5 * 5  # eyes at y=25, nose 5 px below them
    below = ys > chin + 2
    assert below.any()  # the neck is face
    assert np.abs(xs[below] - 60).max() <= 0.14 * 40 + 1.5  # ... no wider than the neck
    slope = labels[rr, cc][rr > 46]
    assert (slope == L["upper-clothes"]).mean() > 0.7 and not (slope == L["face"]).any()  # the rest: shoulder caps


def test_back_view_with_a_nose_is_hair_when_facing_back():
    """BlazePose puts a nose and eyes on the back of a head: facing='back' overrides them."""
    labels = coarse_parsing(draw_person(FRONT), keypoints(FRONT), facing="back")
    assert label_at(labels, 60, 28) == L["hair"] and label_at(labels, 60, 15) == L["hair"]
    assert not (labels == L["face"]).any()
    with pytest.raises(SPGNetError, match="facing"):
        coarse_parsing(draw_person(FRONT), keypoints(FRONT), facing="side")


def test_skirt_when_the_mask_fills_the_gap_between_the_legs():
    joints = dict(FRONT, **{"r-knee": (38, 145), "r-ankle": (34, 178), "l-knee": (82, 145), "l-ankle": (86, 178)})
    trousers = draw_person(joints)
    labels = coarse_parsing(trousers, keypoints(joints))
    assert not (labels == L["skirt"]).any() and label_at(labels, 40, 140) == L["pants"]
    skirt = trousers.copy()
    rr, cc = polygon([110, 110, 150, 150], [46, 74, 88, 32], shape=skirt.shape)  # an A-line skirt to the knees
    skirt[rr, cc] = True
    labels = coarse_parsing(skirt, keypoints(joints))
    assert label_at(labels, 60, 135) == L["skirt"] and label_at(labels, 40, 140) == L["skirt"]


def test_hair_over_the_shoulders_is_hair():
    mask = draw_person(FRONT)
    for x in (44, 76):  # long hair falling beside the neck onto the shoulders
        mask[disk((40, x), 6, shape=mask.shape)] = True
    labels = coarse_parsing(mask, keypoints(FRONT))
    assert label_at(labels, 44, 38) == L["hair"] and label_at(labels, 76, 38) == L["hair"]
    assert label_at(labels, 28, 92) == L["right-arm"]


def test_colours_tell_sleeves_and_bare_legs():
    """With the photo: skin-coloured arm pixels stay arm, others are sleeves; skin under the
    pants' region is bare leg."""
    mask = draw_person(FRONT)
    skin, shirt, shorts = np.array([224, 172, 140]), np.array([40, 60, 160]), np.array([30, 30, 30])
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:52][mask[:52]] = skin  # head and neck
    image[:, :40][mask[:, :40]] = skin  # the right arm is bare from the shoulder ...
    image[:, 80:][mask[:, 80:]] = shirt  # ... the left arm has a long sleeve
    image[110:][mask[110:]] = shorts
    image[140:][mask[140:]] = skin  # bare shins
    image[175:][mask[175:]] = shorts  # shoes
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert label_at(labels, 28, 92) == L["right-arm"] and label_at(labels, 92, 92) == L["upper-clothes"]
    assert label_at(labels, 47, 125) == L["pants"]
    assert label_at(labels, 46, 160) == L["right-leg"] and label_at(labels, 74, 160) == L["left-leg"]


@pytest.mark.parametrize("view", ["front", "back"])
def test_a_collar_above_the_shoulders_is_clothing_when_it_is_not_hair_coloured(view):
    """Mask above the shoulders beside the head that no arm claims is hair falling over them
    only when it has the hair's colour; a collar is clothing. From the front, hair below the
    eyes is checked against the hair above them; from behind, with no face to go by, hair
    over the shoulders against the hair's colour (a back view's collar was hair)."""
    mask = draw_person(FRONT)
    for x in (44, 76):
        mask[disk((40, x), 6, shape=mask.shape)] = True
    hair, skin, shirt = np.array([60, 35, 20]), np.array([224, 172, 140]), np.array([200, 90, 30])
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    if view == "front":
        image[:52][mask[:52]] = skin
        image[:22][mask[:22]] = hair  # the top of the head
        image[:52, 55:66][mask[:52, 55:66] & (np.arange(52)[:, None] > 22)] = skin  # the neck stays skin
    else:
        image[:46][mask[:46]] = hair  # the back of the head
        image[90:110, 20:36][mask[90:110, 20:36]] = skin  # hands, for the skin colour
        image[90:110, 84:100][mask[90:110, 84:100]] = skin
    image[34:47, 38:50][mask[34:47, 38:50]] = hair  # the blob at x 44 is hair ...
    image[34:47, 70:82][mask[34:47, 70:82]] = shirt  # ... the one at x 76 a shirt's collar
    labels = coarse_parsing(mask, keypoints(FRONT if view == "front" else BACK), image, facing=view)
    assert label_at(labels, 60, 30) == (L["hair"] if view == "back" else L["face"])
    assert label_at(labels, 44, 38) == L["hair"] and label_at(labels, 76, 38) == L["upper-clothes"]


def _rgb(ycbcr: np.ndarray) -> np.ndarray:
    """YCbCr (JPEG's, 0-255) -> RGB uint8, written out independently of the module's converter."""
    y, cb, cr = (ycbcr[..., i].astype(np.float64) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], -1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _shaded_skin(n: int, seed: int = 0) -> np.ndarray:
    """``n`` skin pixels as a real face shows them: lightness, Cb and Cr spread by shading and redness."""
    rng = np.random.default_rng(seed)
    return _rgb(np.stack([rng.uniform(120, 200, n), rng.uniform(97, 117, n), rng.uniform(143, 169, n)], -1))


def test_light_trousers_are_not_bare_legs():
    """A face whose skin varies as real skin does (and sunglasses) once made a wide skin model
    that took stone-coloured trousers for bare legs; skin lies in a chroma box they are outside."""
    mask, kp = draw_person(FRONT), keypoints(FRONT)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (40, 60, 160)  # a blue shirt
    head = mask & (np.arange(H)[:, None] < 52)
    image[head] = _shaded_skin(int(head.sum()))
    image[22:27, 48:72][mask[22:27, 48:72]] = (25, 25, 28)  # sunglasses
    image[:18][mask[:18]] = (60, 35, 20)  # hair
    image[:, :40][mask[:, :40]] = _shaded_skin(int(mask[:, :40].sum()), seed=1)  # a bare right arm
    image[110:][mask[110:]] = (200, 195, 180)  # stone trousers down to the feet
    labels = coarse_parsing(mask, kp, image)
    legs = np.isin(labels[110:175], (L["left-leg"], L["right-leg"]))
    assert legs.sum() == 0
    assert label_at(labels, 47, 125) == L["pants"] and label_at(labels, 46, 160) == L["pants"]
    arm = labels[60:110, :40][mask[60:110, :40]]
    assert (arm == L["right-arm"]).mean() > 0.9  # shaded skin on the arm is still skin


def test_a_collar_below_the_chin_is_clothing():
    mask, kp = draw_person(FRONT), keypoints(FRONT)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (200, 90, 30)
    image[:52][mask[:52]] = (224, 172, 140)
    image[:18][mask[:18]] = (60, 35, 20)
    image[40:52][mask[40:52]] = (20, 20, 22)  # a black turtleneck from below the chin
    labels = coarse_parsing(mask, kp, image)
    assert label_at(labels, 60, 43) == L["upper-clothes"]  # the neck capsule over the collar
    assert label_at(labels, 60, 33) == L["face"] and label_at(labels, 60, 38) == L["face"]  # mouth and chin
    assert label_at(coarse_parsing(mask, kp), 60, 43) == L["face"]  # without the photo: the neck is face


def test_trousers_filling_the_gap_down_to_the_feet_are_not_a_skirt():
    """Wide trousers fill the gap between spread thighs as a skirt does, but their colour goes
    on down the shins; below a skirt are legs (skin or tights of another colour)."""
    joints = dict(FRONT, **{"r-knee": (38, 145), "r-ankle": (34, 178), "l-knee": (82, 145), "l-ankle": (86, 178)})
    mask = draw_person(joints)
    rr, cc = polygon([110, 110, 150, 150], [46, 74, 88, 32], shape=mask.shape)
    mask[rr, cc] = True
    kp = keypoints(joints)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (40, 60, 160)
    image[:52][mask[:52]] = (224, 172, 140)
    image[:18][mask[:18]] = (60, 35, 20)
    image[110:][mask[110:]] = (30, 40, 90)  # navy trousers to the feet
    labels = coarse_parsing(mask, kp, image)
    assert label_at(labels, 60, 135) == L["pants"] and label_at(labels, 40, 165) == L["pants"]
    image[152:][mask[152:]] = (224, 172, 140)  # the same garment ending at the knees: a skirt
    labels = coarse_parsing(mask, kp, image)
    assert label_at(labels, 60, 135) == L["skirt"] and label_at(labels, 40, 140) == L["skirt"]
    assert label_at(labels, 36, 165) == L["right-leg"]


def test_a_raised_hand_is_arm_not_hair():
    """Above the shoulders, mask pixels away from the arm bones were hair (hair over the
    shoulders); a hand goes on beyond the wrist, so a raised hand stays arm."""
    joints = dict(FRONT, **{"r-elbow": (24, 38), "r-wrist": (22, 18)})
    mask = draw_person(joints)
    mask[disk((8, 21), 6, shape=mask.shape)] = True  # the hand, fingers up
    labels = coarse_parsing(mask, keypoints(joints))
    assert label_at(labels, 21, 8) == L["right-arm"] and label_at(labels, 21, 4) == L["right-arm"]
    assert label_at(labels, 60, 14) == L["hair"]  # the top of the head is still hair


def test_a_skirt_of_the_tops_colour_is_a_dress():
    joints = dict(FRONT, **{"r-knee": (38, 145), "r-ankle": (34, 178), "l-knee": (82, 145), "l-ankle": (86, 178)})
    mask = draw_person(joints)
    rr, cc = polygon([110, 110, 150, 150], [46, 74, 88, 32], shape=mask.shape)
    mask[rr, cc] = True
    kp = keypoints(joints)
    skin, red, navy = (224, 172, 140), (170, 30, 40), (30, 40, 90)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = red  # one red garment from the shoulders to the knees
    image[:52][mask[:52]] = skin
    image[:18][mask[:18]] = (60, 35, 20)
    image[:, :40][(np.arange(H)[:, None] < 110) & mask[:, :40]] = skin  # bare arms
    image[:, 80:][(np.arange(H)[:, None] < 110) & mask[:, 80:]] = skin
    image[152:][mask[152:]] = skin  # bare shins
    labels = coarse_parsing(mask, kp, image)
    assert label_at(labels, 60, 80) == L["dress"] and label_at(labels, 60, 135) == L["dress"]
    assert label_at(labels, 36, 165) == L["right-leg"] and label_at(labels, 28, 92) == L["right-arm"]
    image[52:110][mask[52:110]] = navy  # a navy top over a red skirt: top and skirt
    image[:, :40][(np.arange(H)[:, None] < 110) & mask[:, :40]] = skin
    image[:, 80:][(np.arange(H)[:, None] < 110) & mask[:, 80:]] = skin
    labels = coarse_parsing(mask, kp, image)
    assert label_at(labels, 60, 80) == L["upper-clothes"] and label_at(labels, 60, 135) == L["skirt"]
    assert not (labels == L["dress"]).any()


def test_a_flared_skirt_over_closed_legs_is_a_skirt_and_shorts_stay_pants():
    """Closed legs leave no gap for the skirt to fill; the hem tells: a skirt ends wider than
    the bare legs below it, shorts end as wide as the thighs."""
    skin, grey, blue = (224, 172, 140), (90, 90, 95), (40, 60, 160)
    closed = dict(FRONT, **{"r-hip": (50, 110), "r-knee": (54, 145), "r-ankle": (55, 178),
                            "l-hip": (70, 110), "l-knee": (66, 145), "l-ankle": (65, 178)})
    kp = keypoints(closed)

    def dressed(mask: np.ndarray, bottom_to: int) -> np.ndarray:
        image = np.zeros((H, W, 3), np.uint8)
        image[mask] = blue
        image[:52][mask[:52]] = skin
        image[:18][mask[:18]] = (60, 35, 20)
        image[110:bottom_to][mask[110:bottom_to]] = grey
        image[bottom_to:][mask[bottom_to:]] = skin
        image[178:][mask[178:]] = (20, 20, 20)  # shoes
        return image

    shorts = draw_person(closed)
    labels = coarse_parsing(shorts, kp, dressed(shorts, 138))
    assert label_at(labels, 52, 125) == L["pants"] and label_at(labels, 54, 160) == L["right-leg"]
    assert not (labels == L["skirt"]).any()
    skirt = draw_person(closed)
    rr, cc = polygon([110, 110, 138, 138], [44, 76, 92, 28], shape=skirt.shape)  # an A-line skirt, mid-thigh
    skirt[rr, cc] = True
    labels = coarse_parsing(skirt, kp, dressed(skirt, 138))
    assert label_at(labels, 60, 130) == L["skirt"] and label_at(labels, 38, 134) == L["skirt"]
    assert label_at(labels, 54, 160) == L["right-leg"] and label_at(labels, 66, 160) == L["left-leg"]


def test_wide_shorts_open_between_the_legs_are_pants_under_a_loose_mask():
    """Wide shorts end wider than the bare legs below them, like a skirt's hem, but they are
    open between the legs; a loose mask (as BlazePose's often is) fills that opening with
    the background's colour. The hem must be closed by the garment's colour on the line
    between the legs for a skirt."""
    skin, navy, wall = (224, 172, 140), (35, 40, 90), (200, 200, 205)
    mask = draw_person(FRONT)
    mask[110:140, 36:59] = True  # the right leg's wide tube
    mask[110:140, 61:85] = True  # the left leg's
    mask[126:140, 59:61] = True  # the opening between them, taken in by a loose mask
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = navy
    image[:52][mask[:52]] = skin
    image[:18][mask[:18]] = (60, 35, 20)
    image[52:110][mask[52:110]] = (200, 40, 40)  # a red top
    image[140:][mask[140:]] = skin
    image[178:][mask[178:]] = (20, 20, 20)  # shoes
    image[126:140, 57:63] = wall  # the opening shows the wall behind
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert not (labels == L["skirt"]).any()
    assert label_at(labels, 40, 132) == L["pants"] and label_at(labels, 80, 132) == L["pants"]
    assert label_at(labels, 47, 160) == L["right-leg"] and label_at(labels, 73, 160) == L["left-leg"]


def test_a_back_view_takes_its_skin_colour_from_the_hands():
    """Seen from the back there is no face to learn the skin's colour from; the hands (beyond
    the wrists) give it: a sleeve is clothing, a bare arm is arm, bare shins are legs."""
    mask = draw_person(FRONT, hands=True)
    skin, shirt, shorts = np.array([224, 172, 140]), np.array([40, 60, 160]), np.array([30, 30, 30])
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:45][mask[:45]] = (60, 35, 20)  # the back of the head: hair
    image[:, :40][mask[:, :40]] = skin  # a bare right arm ...
    image[100:, 80:][mask[100:, 80:]] = skin  # ... and a long left sleeve, its hand bare
    image[110:, 34:86][mask[110:, 34:86]] = shorts
    image[140:][mask[140:]] = skin  # bare shins
    image[175:][mask[175:]] = shorts  # shoes
    labels = coarse_parsing(mask, keypoints(BACK), image)
    assert label_at(labels, 60, 30) == L["hair"]
    assert label_at(labels, 28, 92) == L["right-arm"] and label_at(labels, 92, 92) == L["upper-clothes"]
    assert label_at(labels, 94, 112) == L["left-arm"]  # the hand
    assert label_at(labels, 47, 125) == L["pants"]
    assert label_at(labels, 46, 160) == L["right-leg"] and label_at(labels, 74, 160) == L["left-leg"]


@pytest.mark.parametrize("neck", ["skin", "turtleneck"])
def test_a_back_views_neck_is_face_when_bare_and_clothing_when_covered(neck):
    """Seen from the back the head is hair, but a bare neck below the hair is skin, which
    CIHP labels face from either side (the skin colour from the hands); a turtleneck, of
    neither the skin's nor the hair's colour, is clothing. The neck begins below the head's
    silhouette (the head disk reaches down to y 45): what is painted there is the head's."""
    mask = draw_person(FRONT, hands=True)
    skin, shirt, hair = (224, 172, 140), (40, 60, 160), (60, 35, 20)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:40][mask[:40]] = hair  # the back of the head
    image[40:52][mask[40:52]] = skin if neck == "skin" else (30, 140, 60)
    image[100:][mask[100:]] = skin  # hands and legs
    image[110:140, 34:86][mask[110:140, 34:86]] = (30, 30, 30)  # shorts
    labels = coarse_parsing(mask, keypoints(BACK), image)
    assert label_at(labels, 60, 25) == L["hair"] and label_at(labels, 60, 35) == L["hair"]
    expected = L["face"] if neck == "skin" else L["upper-clothes"]
    assert label_at(labels, 60, 44) == expected and label_at(labels, 57, 45) == expected
    assert label_at(labels, 60, 41) == L["hair"]
    assert label_at(labels, 26, 110) == L["right-arm"]  # the hand that gave the skin colour


def test_hair_framing_the_face_is_hair_not_face():
    """The face ellipse (from eyes, nose and ears) is wider than a face framed by long hair;
    with the photo, its pixels that are not skin but have the hair's colour and touch the
    hair are hair. Eyes and a mouth (not touching the hair) stay face."""
    joints = dict(FRONT, nose=(60, 33))  # a long nose: a wide face ellipse (x 46-74)
    mask = draw_person(joints)
    skin, hair, shirt = (224, 172, 140), (60, 35, 20), (40, 60, 160)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:52][mask[:52]] = skin
    head = np.zeros((H, W), bool)
    head[disk((28, 60), 17, shape=head.shape)] = True
    image[head & (np.arange(H)[:, None] < 20)] = hair  # the top of the head
    image[head & (np.arange(H)[:, None] < 42) & (np.abs(np.arange(W) - 60) > 9)[None, :]] = hair  # side hair
    image[24:27, 54:57] = image[24:27, 64:67] = (30, 20, 15)  # dark eyes
    image[36:38, 57:64] = (150, 60, 60)  # the mouth
    labels = coarse_parsing(mask, keypoints(joints), image)
    assert (labels[20:42, 46:51] == L["hair"]).mean() > 0.9 and (labels[20:42, 70:75] == L["hair"]).mean() > 0.9
    assert label_at(labels, 48, 30) == L["hair"] and label_at(labels, 72, 30) == L["hair"]
    assert label_at(labels, 60, 30) == L["face"] and label_at(labels, 55, 25) == L["face"]
    assert label_at(labels, 60, 37) == L["face"]


def test_long_hair_down_the_back_is_hair_unless_the_top_is_the_hairs_colour():
    mask = draw_person(FRONT)
    hair, shirt, skin = (60, 35, 20), (40, 60, 160), (224, 172, 140)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:45][mask[:45]] = hair
    image[45:80, 52:69][mask[45:80, 52:69]] = hair  # hair down to the shoulder blades
    image[:, :36][mask[:, :36]] = skin  # bare arms
    image[:, 85:][mask[:, 85:]] = skin
    labels = coarse_parsing(mask, keypoints(BACK), image)
    assert label_at(labels, 60, 65) == L["hair"] and label_at(labels, 60, 75) == L["hair"]
    assert label_at(labels, 45, 70) == L["upper-clothes"] and label_at(labels, 60, 95) == L["upper-clothes"]
    image[45:110][mask[45:110] & (image[45:110] == shirt).all(-1)] = (62, 37, 22)  # a top of the hair's colour
    labels = coarse_parsing(mask, keypoints(BACK), image)
    assert label_at(labels, 60, 65) == L["upper-clothes"] and label_at(labels, 45, 70) == L["upper-clothes"]


def test_trousers_that_pass_for_skin_are_pants_when_the_hips_wear_them():
    """Brown trousers can fall inside a face's skin model (the face's shading widens it); the
    hips are always clothed, so leg pixels nearer the colour at the top of the legs than the
    skin's are cloth. Bare shins below shorts stay legs."""
    mask = draw_person(FRONT)
    rng = np.random.default_rng(0)
    skin, shirt, brown = np.array([205, 150, 120]), (40, 60, 160), np.array([150, 100, 75])
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    shade = rng.uniform(0.6, 1.1, (52, W, 1))  # a shaded face: a wide lightness spread
    image[:52][mask[:52]] = np.clip(skin * shade, 0, 255).astype(np.uint8)[mask[:52]]
    image[:18][mask[:18]] = (60, 35, 20)
    image[110:][mask[110:]] = brown
    image[175:][mask[175:]] = (20, 20, 20)
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert label_at(labels, 47, 125) == L["pants"] and label_at(labels, 46, 160) == L["pants"]
    assert not np.isin(labels, (L["left-leg"], L["right-leg"])).any()
    image[140:175][mask[140:175]] = skin  # shorts: bare shins below
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert label_at(labels, 47, 125) == L["pants"] and label_at(labels, 46, 160) == L["right-leg"]


@pytest.mark.parametrize("waist_y", [126, 96])
def test_the_waist_follows_the_colours_not_the_hip_joints(waist_y):
    """A long top reaching below the hip joints (y 110), or high-waisted trousers above them:
    the border between top and bottom is where their colours meet."""
    mask = draw_person(FRONT)
    skin, shirt, trousers = (224, 172, 140), (200, 40, 40), (30, 40, 90)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:52][mask[:52]] = skin
    image[:18][mask[:18]] = (60, 35, 20)
    image[waist_y:][mask[waist_y:]] = trousers
    image[178:][mask[178:]] = (20, 20, 20)
    image[:, :36][mask[:, :36] & (np.arange(H)[:, None] < 110)] = skin  # bare arms
    image[:, 85:][mask[:, 85:] & (np.arange(H)[:, None] < 110)] = skin
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    for y in range(85, 140, 3):
        want = L["upper-clothes"] if y < waist_y else L["pants"]
        assert label_at(labels, 50, y) == want, y


@pytest.mark.parametrize("pattern", ["stripes", "dots"])
def test_the_waist_of_a_patterned_top_follows_its_colours(pattern):
    """A long top (down to y 126, below the hip joints at 110) of two colours, half and
    half, over navy trousers. A median and a spread of the top's colours lie between its
    two colours and reach the trousers'; its colour histogram holds both and none of the
    trousers', so the border is where the pattern ends."""
    mask = draw_person(FRONT)
    skin, white, red, trousers = (224, 172, 140), (235, 235, 230), (190, 30, 40), (30, 40, 90)
    yy, xx = np.mgrid[:H, :W]
    second = (yy // 4) % 2 == 1 if pattern == "stripes" else ((yy // 5) + (xx // 5)) % 2 == 1  # a check of dots
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = white
    image[mask & second] = red
    image[:52][mask[:52]] = skin
    image[:18][mask[:18]] = (60, 35, 20)
    image[126:][mask[126:]] = trousers
    image[178:][mask[178:]] = (20, 20, 20)
    image[:, :36][mask[:, :36] & (yy[:, :36] < 110)] = skin  # bare arms
    image[:, 85:][mask[:, 85:] & (yy[:, 85:] < 110)] = skin
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    for y in range(100, 140, 3):
        want = L["upper-clothes"] if y < 126 else L["pants"]
        assert label_at(labels, 50, y) == want, y


def test_shoes_start_where_their_colour_does():
    """Shoes are the last tenth of the shin and below; with the photo, the shin's own colour
    (trousers reaching the ankle) wins back what is nearer it than the shoe's; when shoes and
    trousers are too alike to tell, the shoe starts at the ankle."""
    mask = draw_person(FRONT)
    skin, shirt, trousers, shoes = (224, 172, 140), (200, 40, 40), (30, 40, 90), (235, 235, 235)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:52][mask[:52]] = skin
    image[110:][mask[110:]] = trousers
    image[179:][mask[179:]] = shoes  # below the ankles (y 178)
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert label_at(labels, 46, 176) == L["pants"] and label_at(labels, 74, 176) == L["pants"]
    assert label_at(labels, 46, 184) == L["right-shoe"] and label_at(labels, 74, 184) == L["left-shoe"]
    image[179:][mask[179:]] = (32, 42, 92)  # shoes of the trousers' colour: trousers down to the ankle
    labels = coarse_parsing(mask, keypoints(FRONT), image)
    assert label_at(labels, 46, 176) == L["pants"] and label_at(labels, 74, 176) == L["pants"]
    assert label_at(labels, 46, 184) == L["right-shoe"] and label_at(labels, 74, 184) == L["left-shoe"]
    labels = coarse_parsing(mask, keypoints(FRONT))  # without the photo: the last tenth of the shin
    assert label_at(labels, 46, 176) == L["right-shoe"]


def test_a_back_view_without_hands_takes_its_skin_from_bare_shins():
    """Seen from the back with the hands hidden (on the hips, behind the body) the shins below
    a hem give the skin's colour, when it is not the garment at the hips going on down."""
    mask = draw_person(FRONT)
    skin, shirt, shorts = (205, 150, 120), (40, 60, 160), (90, 90, 95)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = shirt
    image[:45][mask[:45]] = (60, 35, 20)
    image[110:][mask[110:]] = shorts
    image[140:][mask[140:]] = skin  # bare shins
    image[178:][mask[178:]] = (20, 20, 20)
    labels = coarse_parsing(mask, keypoints(BACK_NO_HANDS), image)
    assert label_at(labels, 47, 125) == L["pants"]
    assert label_at(labels, 46, 165) == L["right-leg"] and label_at(labels, 74, 165) == L["left-leg"]
    image[110:178][mask[110:178]] = (190, 150, 115)  # trousers of a skin-like colour down to the shoes
    labels = coarse_parsing(mask, keypoints(BACK_NO_HANDS), image)
    assert label_at(labels, 47, 125) == L["pants"] and label_at(labels, 46, 165) == L["pants"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bare_legs_below_a_patterned_skirt_stay_legs(seed):
    """A brown plaid skirt's colour model is wide and close to the skin's; bare legs are nearer
    its median (in its spreads) than the shaded face's skin model. The clothed-hips rule only
    applies when the hips' garment itself passes for skin (here it does not)."""
    joints = dict(FRONT, **{"r-knee": (38, 145), "r-ankle": (34, 178), "l-knee": (82, 145), "l-ankle": (86, 178)})
    mask = draw_person(joints)
    rr, cc = polygon([110, 110, 140, 140], [46, 74, 86, 34], shape=mask.shape)
    mask[rr, cc] = True
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (40, 60, 160)
    shading = np.random.default_rng(seed).uniform(0.8, 1.15, (52, W, 1))
    face = np.clip(np.array([120, 80, 60]) * shading, 0, 255).astype(np.uint8)
    image[:52][mask[:52]] = face[mask[:52]]
    image[:18][mask[:18]] = (20, 15, 10)
    plaid = np.array([(140, 70, 50), (90, 60, 40), (170, 150, 120), (60, 40, 30)], np.uint8)
    yy, xx = np.mgrid[:H, :W]
    checks = plaid[((yy // 3) % 2) * 2 + (xx // 3) % 2]
    skirt = mask & (yy >= 110) & (yy < 140)
    image[skirt] = checks[skirt]
    image[140:][mask[140:]] = (100, 68, 50)  # bare legs
    image[176:][mask[176:]] = (20, 20, 20)
    labels = coarse_parsing(mask, keypoints(joints), image)
    assert label_at(labels, 60, 130) == L["skirt"]
    assert label_at(labels, 36, 160) == L["right-leg"] and label_at(labels, 84, 160) == L["left-leg"]



def test_hair_colour_model_refuses_a_mixture():
    """The hair's model comes from the top of the head; on a short-haired man with a high
    forehead that is hair and skin, and a model that wide would take a shirt's shadows for
    hair (see test_people.py). One colour with texture gives a model; a mixture none."""
    from spgnet.photo.coarse_parsing import _hair_model, _ycbcr

    rng = np.random.default_rng(0)
    hair = np.clip(np.array([70, 50, 35]) + rng.normal(0, 6, (40, 40, 3)), 0, 255).astype(np.uint8)
    ycc = _ycbcr(hair)
    model = _hair_model(ycc, np.ones((40, 40), bool))
    assert model is not None and np.allclose(model[0], _ycbcr(np.array([[[70, 50, 35]]], np.uint8))[0, 0], atol=3)
    mixed = hair.copy()
    mixed[:, :20] = (205, 150, 120)  # half of it skin
    assert _hair_model(_ycbcr(mixed), np.ones((40, 40), bool)) is None
    assert _hair_model(ycc, np.zeros((40, 40), bool)) is None  # too few pixels



def test_the_hands_teach_the_skin_colour_only_when_they_agree():
    """Seen from the back, the hands give the skin's colour: both bare, their colour; one in
    a brown leather glove (a catcher's mitt passes the skin box), no model at all."""
    from spgnet.photo.coarse_parsing import _hands_skin, _ycbcr

    kp = keypoints(BACK)
    mask = draw_person(FRONT, hands=True)
    nearest = np.full((H, W), -1)
    nearest[:, :40], nearest[:, 80:] = 6, 5  # the right arm's side (_R_ARM), the left arm's (_L_ARM)
    skin, leather = (205, 150, 120), (95, 60, 40)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (40, 60, 160)
    image[100:, :40][mask[100:, :40]] = skin
    image[100:, 80:][mask[100:, 80:]] = skin
    model = _hands_skin(_ycbcr(image), mask, kp, kp[:, 0] >= 0, nearest)
    assert model is not None and np.allclose(model[0], _ycbcr(np.array([[skin]], np.uint8))[0, 0], atol=1.0)
    image[100:, 80:][mask[100:, 80:]] = leather
    assert _hands_skin(_ycbcr(image), mask, kp, kp[:, 0] >= 0, nearest) is None


def test_background_inside_a_loose_mask_between_the_legs_is_no_skirt():
    """A segmentation mask that bleeds across the gap between spread legs fills it with
    background (grass), not with what the hips wear: trousers stay pants."""
    joints = dict(FRONT, **{"r-knee": (38, 145), "r-ankle": (34, 178), "l-knee": (82, 145), "l-ankle": (86, 178)})
    mask = draw_person(joints)
    gap = np.zeros((H, W), bool)
    rr, cc = polygon([112, 112, 150, 150], [50, 70, 80, 40], shape=mask.shape)
    gap[rr, cc] = True
    gap &= ~mask
    mask |= gap
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (200, 40, 40)
    image[:52][mask[:52]] = (224, 172, 140)
    image[110:][mask[110:]] = (40, 60, 150)  # blue trousers down to the shoes
    image[gap] = (60, 140, 50)  # grass
    image[178:][mask[178:]] = (20, 20, 20)
    labels = coarse_parsing(mask, keypoints(joints), image)
    assert not (labels == L["skirt"]).any()
    assert label_at(labels, 40, 140) == L["pants"]


def test_without_a_skin_colour_arms_of_the_tops_colour_are_sleeves():
    """A back view with no hands and no bare shins gives no skin colour; arm pixels of the
    torso's clothing colour (outside the skin box) are still its sleeves, skin-coloured arm
    pixels stay arm."""
    mask = draw_person(FRONT)
    image = np.zeros((H, W, 3), np.uint8)
    image[mask] = (40, 60, 160)  # a blue top with long sleeves ...
    image[:45][mask[:45]] = (20, 20, 20)
    image[:, :36][mask[:, :36] & (np.arange(H)[:, None] < 110)] = (205, 150, 120)  # ... but a bare right arm
    image[110:][mask[110:]] = (90, 90, 95)
    labels = coarse_parsing(mask, keypoints(BACK_NO_HANDS), image)
    assert label_at(labels, 92, 92) == L["upper-clothes"] and label_at(labels, 86, 70) == L["upper-clothes"]
    assert label_at(labels, 28, 92) == L["right-arm"]


@pytest.mark.parametrize("legs", ["closed", "apart"])
def test_a_skirt_cut_by_the_photos_bottom_edge_is_a_skirt_and_cut_trousers_stay_pants(legs):
    """A photo cut at mid-thigh (row 135) shows no hem and no bare legs below it. A skirt
    hangs from the hips: at the cut it is at least as wide as the clothed hips and whole
    between the legs. Trousers cut there are narrower than the hips when the legs are
    closed (the thighs taper) and open between the legs when they are apart."""
    skin, blue, grey, wall = (224, 172, 140), (40, 60, 160), (90, 90, 95), (200, 200, 205)
    cut = 135
    pose = FRONT if legs == "apart" else dict(FRONT, **{"r-hip": (50, 110), "r-knee": (54, 145), "r-ankle": (55, 178),
                                                       "l-hip": (70, 110), "l-knee": (66, 145), "l-ankle": (65, 178)})
    kp = keypoints({k: v for k, v in pose.items() if "knee" not in k and "ankle" not in k})

    def photo(mask: np.ndarray) -> np.ndarray:
        image = np.full((H, W, 3), wall, np.uint8)
        image[mask] = blue
        image[:52][mask[:52]] = skin
        image[:18][mask[:18]] = (60, 35, 20)
        image[104:][mask[104:]] = grey  # the garment from just above the hip joints down
        return image[:cut]

    trousers = draw_person(pose)[:cut]
    labels = coarse_parsing(trousers, kp, photo(draw_person(pose)))
    assert not (labels == L["skirt"]).any()
    assert (labels[130][trousers[130]] == L["pants"]).mean() > 0.9
    skirt = draw_person(pose)
    rr, cc = polygon([106, 106, H, H], [42, 78, 116, 4], shape=skirt.shape)  # an A-line skirt down past the cut
    skirt[rr, cc] = True
    labels = coarse_parsing(skirt[:cut], kp, photo(skirt))
    assert (labels[130][skirt[130]] == L["skirt"]).mean() > 0.9


def test_a_skirt_down_to_the_feet_is_a_skirt_and_trousers_down_to_them_stay_pants():
    """No bare legs below either garment: a maxi skirt reaches the shoes. It hangs from the
    hips, so at its hem it is at least as wide as the clothed hips and whole between the
    legs; trousers over closed legs narrow to the ankles."""
    skin, blue, grey, wall = (224, 172, 140), (40, 60, 160), (90, 90, 95), (200, 200, 205)
    pose = dict(FRONT, **{"r-hip": (50, 110), "r-knee": (54, 145), "r-ankle": (55, 178),
                          "l-hip": (70, 110), "l-knee": (66, 145), "l-ankle": (65, 178)})

    def photo(mask: np.ndarray) -> np.ndarray:
        image = np.full((H, W, 3), wall, np.uint8)
        image[mask] = blue
        image[:52][mask[:52]] = skin
        image[:18][mask[:18]] = (60, 35, 20)
        image[104:178][mask[104:178]] = grey  # the garment, from just above the hip joints to the ankles
        image[178:][mask[178:]] = (20, 20, 20)  # shoes
        return image

    trousers = draw_person(pose)
    labels = coarse_parsing(trousers, keypoints(pose), photo(trousers))
    assert not (labels == L["skirt"]).any()
    assert (labels[120:170][trousers[120:170]] == L["pants"]).mean() > 0.9
    skirt = draw_person(pose)
    rr, cc = polygon([106, 106, 178, 178], [42, 78, 100, 20], shape=skirt.shape)  # to the ankles, flared
    skirt[rr, cc] = True
    labels = coarse_parsing(skirt, keypoints(pose), photo(skirt))
    assert (labels[120:170][skirt[120:170]] == L["skirt"]).mean() > 0.9


def test_a_face_outline_gives_the_face_and_is_checked():
    """With a face outline (as FaceMesh gives it) the face is the head inside it, grown by
    8 % about its centre; the rest of the head is hair. A back view has no face whatever the
    outline; a malformed outline is refused."""
    mask = draw_person(FRONT)
    outline = np.array([[56, 18], [64, 18], [64, 34], [56, 34]], float)  # a narrow face, centre (60, 26)
    labels = coarse_parsing(mask, keypoints(FRONT), face_outline=outline)
    grown_x, grown_y = 4 * 1.08, 8 * 1.08  # half-sizes of the grown rectangle
    head = (labels == L["face"]) | (labels == L["hair"])
    yy, xx = np.nonzero(head & (np.arange(H)[:, None] < 34))  # above the neck (face by construction)
    inside = (np.abs(xx - 60) < grown_x - 0.5) & (np.abs(yy - 26) < grown_y - 0.5)
    outside = (np.abs(xx - 60) > grown_x + 0.5) | (np.abs(yy - 26) > grown_y + 0.5)
    assert inside.sum() > 100 and outside.sum() > 100
    assert (labels[yy[inside], xx[inside]] == L["face"]).all()
    assert (labels[yy[outside], xx[outside]] == L["hair"]).all()
    assert label_at(labels, 53, 28) == L["hair"]  # the ellipse calls this face
    assert label_at(coarse_parsing(mask, keypoints(FRONT)), 53, 28) == L["face"]
    back = coarse_parsing(mask, keypoints(FRONT), facing="back", face_outline=outline)
    assert not (back == L["face"]).any()
    for bad in (outline[:2], outline[:, :1], np.full((4, 2), np.nan)):
        with pytest.raises(SPGNetError, match="face_outline"):
            coarse_parsing(mask, keypoints(FRONT), face_outline=bad)
