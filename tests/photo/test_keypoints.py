"""Keypoints from photos (mediapipe BlazePose -> OpenPose-18): the mapping against
mediapipe's own landmark names, a real photo (skimage's astronaut) against hand-read
facts, synthetic people against their ground-truth keypoints, no person, determinism.
The coarse parsing of the detected astronaut is checked here too (it needs the mask)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from spgnet import SPGNetError
from spgnet.photo.coarse_parsing import coarse_parsing
from spgnet.photo.detect import PoseDetector, detect, detect_keypoints, landmarks_to_openpose18
from spgnet.parsing import LABEL_INDEX as L
from spgnet.pose import FLIP_INDEX, KEYPOINT_NAMES

# OpenPose-18 name -> BlazePose landmark name (mediapipe's PoseLandmark enum), written out
# from docs/design.md §2/§11; the neck is the shoulders' midpoint.
OPENPOSE_FROM_BLAZEPOSE = {
    "nose": "NOSE", "r-shoulder": "RIGHT_SHOULDER", "r-elbow": "RIGHT_ELBOW", "r-wrist": "RIGHT_WRIST",
    "l-shoulder": "LEFT_SHOULDER", "l-elbow": "LEFT_ELBOW", "l-wrist": "LEFT_WRIST",
    "r-hip": "RIGHT_HIP", "r-knee": "RIGHT_KNEE", "r-ankle": "RIGHT_ANKLE",
    "l-hip": "LEFT_HIP", "l-knee": "LEFT_KNEE", "l-ankle": "LEFT_ANKLE",
    "r-eye": "RIGHT_EYE", "l-eye": "LEFT_EYE", "r-ear": "RIGHT_EAR", "l-ear": "LEFT_EAR",
}

# Read off skimage.data.astronaut() (512 x 512) by eye: the face lies in this box (x0, y0, x1, y1).
ASTRONAUT_FACE_BOX = (160, 60, 290, 170)


@pytest.fixture(scope="module")
def detector():
    with PoseDetector() as det:
        yield det


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_detection(detector, astronaut):
    found = detector([astronaut])
    assert len(found) == 1 and found[0] is not None, "no person found on the astronaut"
    return found[0]


def blazepose_index() -> dict[str, int]:
    from mediapipe.python.solutions.pose import PoseLandmark

    return {p.name: int(p.value) for p in PoseLandmark}


def distance_to_mask(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Euclidean distance in pixels from each (x, y) point to the nearest mask pixel."""
    dist = ndimage.distance_transform_edt(~mask)
    xy = np.rint(points).astype(int)
    return dist[xy[:, 1], xy[:, 0]]


# -- the mapping -------------------------------------------------------------------------


def test_mapping_follows_the_landmark_names():
    index = blazepose_index()
    assert len(index) == 33
    lm = np.zeros((33, 3), np.float32)
    lm[:, 0] = 3.0 + np.arange(33)  # landmark i at (3 + i, 40 + 2 i): every one distinct, on a 200 x 100 image
    lm[:, 1] = 40.0 + 2 * np.arange(33)
    lm[:, 2] = 0.9
    kp = landmarks_to_openpose18(lm, (200, 100))
    for j, name in enumerate(KEYPOINT_NAMES):
        if name == "neck":
            expected = 0.5 * (lm[index["LEFT_SHOULDER"], :2] + lm[index["RIGHT_SHOULDER"], :2])
        else:
            expected = lm[index[OPENPOSE_FROM_BLAZEPOSE[name]], :2]
        np.testing.assert_allclose(kp[j], expected, err_msg=name)


def test_mapping_drops_invisible_and_off_image_joints():
    index = blazepose_index()
    lm = np.zeros((33, 3), np.float32)
    lm[:, :2] = (50.0, 60.0)
    lm[:, 2] = 0.9
    lm[index["LEFT_SHOULDER"], 2] = 0.3  # below the threshold -> l-shoulder and neck missing
    lm[index["RIGHT_KNEE"], :2] = (120.0, 10.0)  # right of a 100-wide image
    lm[index["LEFT_KNEE"], :2] = (99.4, 199.3)  # within half a pixel of the corner: kept, clamped
    lm[index["NOSE"], :2] = (-0.7, 10.0)  # more than half a pixel left of the image
    kp = landmarks_to_openpose18(lm, (200, 100), visibility_threshold=0.5)
    name = {n: j for j, n in enumerate(KEYPOINT_NAMES)}
    for gone in ("l-shoulder", "neck", "r-knee", "nose"):
        assert (kp[name[gone]] == -1).all(), gone
    np.testing.assert_allclose(kp[name["l-knee"]], (99.0, 199.0))
    np.testing.assert_allclose(kp[name["r-shoulder"]], (50.0, 60.0))
    # a lower threshold keeps the shoulder, and the neck comes back
    kp = landmarks_to_openpose18(lm, (200, 100), visibility_threshold=0.2)
    assert (kp[name["l-shoulder"]] >= 0).all() and (kp[name["neck"]] >= 0).all()


# -- a real photo ------------------------------------------------------------------------


def test_person_found_on_the_astronaut(astronaut_detection, astronaut):
    d = astronaut_detection
    h, w = astronaut.shape[:2]
    assert d.keypoints.shape == (18, 2) and d.keypoints.dtype == np.float32
    assert d.mask.shape == (h, w) and d.mask.dtype == bool
    assert 0.2 < d.mask.mean() < 0.7  # a half-length portrait
    assert 0.0 < d.score <= 1.0
    present = (d.keypoints >= 0).all(1)
    for name in ("nose", "neck", "r-shoulder", "l-shoulder", "r-eye", "l-eye"):
        assert present[KEYPOINT_NAMES.index(name)], f"{name} not found"
    kp = d.keypoints[present]
    assert (kp[:, 0] <= w - 1).all() and (kp[:, 1] <= h - 1).all()
    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    for name in ("nose", "r-eye", "l-eye"):
        x, y = d.keypoints[KEYPOINT_NAMES.index(name)]
        assert x0 <= x <= x1 and y0 <= y <= y1, f"{name} at ({x:.0f}, {y:.0f}) is not on the face"


def test_astronaut_keypoints_lie_on_the_mask(astronaut_detection):
    d = astronaut_detection
    kp = d.keypoints[(d.keypoints >= 0).all(1)]
    assert distance_to_mask(d.mask, kp).max() <= 4.0


def test_frontal_person_right_side_is_image_left(astronaut_detection):
    kp = astronaut_detection.keypoints
    j = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    assert kp[j["r-shoulder"], 0] < kp[j["l-shoulder"], 0]
    assert kp[j["r-eye"], 0] < kp[j["l-eye"], 0]
    assert kp[j["r-shoulder"], 0] < kp[j["neck"], 0] < kp[j["l-shoulder"], 0]


def test_coarse_parsing_of_the_astronaut(astronaut_detection):
    d = astronaut_detection
    labels = coarse_parsing(d.mask, d.keypoints)
    assert labels.shape == d.mask.shape and labels.dtype == np.uint8
    assert (labels[~d.mask] == 0).all()
    assert (labels[d.mask] > 0).mean() >= 0.9
    j = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    nose = np.rint(d.keypoints[j["nose"]]).astype(int)
    assert labels[nose[1], nose[0]] == 13  # face
    neck = d.keypoints[j["neck"]]
    below = np.rint(neck + (0, 80)).astype(int)  # the chest, 80 px below the neck
    assert labels[below[1], below[0]] == 5  # upper-clothes
    top_of_head = np.flatnonzero(d.mask[:, nose[0]])[0]
    assert labels[top_of_head + 3, nose[0]] == 2  # hair on top


# -- no person, batches, determinism -----------------------------------------------------


def test_no_person_in_blank_images(detector):
    blank = [np.zeros((256, 176, 3), np.uint8), np.full((128, 128, 3), 200, np.uint8)]
    assert detector(blank) == [None, None]
    kp = detect_keypoints(np.stack([blank[0], blank[0]]), detector=detector)
    assert kp.shape == (2, 18, 2) and (kp == -1).all()


def test_deterministic_and_independent_of_the_batch(detector, astronaut, astronaut_detection):
    blank = np.zeros((96, 64, 3), np.uint8)
    again = detector([blank, astronaut, astronaut])
    assert again[0] is None
    with PoseDetector() as fresh:
        other = fresh([astronaut])[0]
    for d in (again[1], again[2], other):
        np.testing.assert_array_equal(d.keypoints, astronaut_detection.keypoints)
        np.testing.assert_array_equal(d.mask, astronaut_detection.mask)
        np.testing.assert_array_equal(d.landmarks, astronaut_detection.landmarks)


def test_detect_builds_a_detector_and_checks_input(astronaut, astronaut_detection):
    found = detect([astronaut])  # its own detector, default threshold
    np.testing.assert_array_equal(found[0].keypoints, astronaut_detection.keypoints)
    with pytest.raises(SPGNetError, match="uint8"):
        detect([astronaut.astype(np.float32)])
    with pytest.raises(SPGNetError, match="threshold"):
        PoseDetector(visibility_threshold=1.5)


# -- synthetic people with ground truth --------------------------------------------------


def synthetic_person(seed, view: str, size: tuple[int, int] = (256, 176), **pose):
    """A ``spgnet synth`` person drawn from ``np.random.default_rng(seed)`` (``pose``: more
    arguments of ``sample_pose``), rendered at ``size``."""
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    rng = np.random.default_rng(seed)
    return render_person(sample_identity(rng), sample_pose(rng, view=view, **pose), size)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def side_errors(gt: np.ndarray, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of the side-specific joints present in both to their own ground truth and
    to their mirror partner's."""
    partner = np.array(FLIP_INDEX)
    sided = (gt >= 0).all(1) & (kp >= 0).all(1) & (gt[partner] >= 0).all(1) & (partner != np.arange(18))
    return np.linalg.norm(kp - gt, axis=1)[sided], np.linalg.norm(kp - gt[partner], axis=1)[sided]


@pytest.mark.parametrize("seed,view", [(100, "front"), (3, "front"), (102, "back")])
def test_synthetic_person_matches_ground_truth(detector, seed, view):
    person = synthetic_person(seed, view, zoom=False)
    d = detector([person["image"]])[0]
    assert d is not None
    gt, kp = person["keypoints"], d.keypoints
    both = (gt >= 0).all(1) & (kp >= 0).all(1)
    assert both.sum() >= 10
    err = np.linalg.norm(kp - gt, axis=1)[both]
    assert np.median(err) < 6.0 and np.percentile(err, 90) < 15.0, err.round(1)
    # each side-specific joint is nearer its own ground truth than its mirror partner's
    own, swapped = side_errors(gt, kp)
    assert (own < swapped).mean() >= 0.9
    # person mask against the rendered silhouette
    assert mask_iou(person["parsing"] > 0, d.mask) > 0.9
    assert distance_to_mask(d.mask, kp[(kp >= 0).all(1)]).max() <= 4.0


def test_front_and_back_views_of_synthetic_people(detector):
    """The view of 20 synthetic people (10 back, 10 front, drawn by the renderer): BlazePose
    puts a face on the back of a head, and the face detector finds weak faces in small
    hair-coloured heads, so only the colour cue gets the back views right."""
    found = {"front": [], "back": []}
    for i in range(20):
        view = "back" if i % 2 else "front"
        people = detector.detect_people(synthetic_person([7, i], view)["image"])
        if people:
            found[view].append(people[0].facing)
    assert found["front"] == ["front"] * 10
    assert len(found["back"]) >= 9 and set(found["back"]) == {"back"}, found["back"]


def test_a_person_filling_the_frame_is_found_with_a_border(detector):
    """BlazePose's person detector misses some people who fill a tight crop (synthetic back
    views at 256 x 176); the search then runs once more with a quarter of the size as a
    border around the photo. Those found keep the photo's own frame."""
    for i in (11, 79):
        person = synthetic_person([11, i], "back")
        people = detector.detect_people(person["image"])
        assert len(people) == 1, i
        d = people[0]
        assert d.mask.shape == (256, 176)
        assert mask_iou(person["parsing"] > 0, d.mask) > 0.9
        gt, kp = person["keypoints"], d.keypoints
        partner = np.array(FLIP_INDEX)
        both = (gt >= 0).all(1) & (kp >= 0).all(1) & (gt[partner] >= 0).all(1)
        # in the photo's frame (whether left and right are right: tested below)
        err = np.minimum(np.linalg.norm(kp - gt, axis=1), np.linalg.norm(kp - gt[partner], axis=1))[both]
        assert both.sum() >= 8 and np.median(err) < 8.0, err.round(1)


def test_the_bordered_run_also_follows_a_whole_image_run_that_found_nobody(detector):
    """A synthetic back view at 512 x 352 (seed [31, 19]) that BlazePose misses on the whole
    image; one window finds a small skeleton in her long hair. The bordered run must not
    wait for the windows to find nobody: it finds her whole."""
    person = synthetic_person([31, 19], "back", (512, 352))
    people = detector.detect_people(person["image"])
    best = max(mask_iou(person["parsing"] > 0, d.mask) for d in people)
    assert best > 0.85, best


def test_a_piece_of_a_person_seen_by_a_window_is_not_a_second_person(detector):
    """A synthetic woman at 512 x 352 (seed [31, 66]): a window sees her upper body with a
    skeleton of its own; of its three closer looks, two show her whole (already found) and
    one the piece again. She is one person, and her mask is not shared with the piece."""
    person = synthetic_person([31, 66], "front", (512, 352))
    people = detector.detect_people(person["image"])
    assert len(people) == 1
    assert mask_iou(person["parsing"] > 0, people[0].mask) > 0.95


def test_a_wider_border_when_the_first_finds_nobody(detector):
    """A synthetic back view at 512 x 352 (seed [47, 15]) that BlazePose's person detector
    misses on the photo, on its windows and with a quarter border; with a border of half
    the photo's size it is found, in the photo's own frame."""
    person = synthetic_person([47, 15], "back", (512, 352))
    silhouette = person["parsing"] > 0
    people = detector.detect_people(person["image"])
    assert len(people) == 1 and people[0].mask.shape == silhouette.shape
    assert mask_iou(silhouette, people[0].mask) > 0.85


@pytest.mark.parametrize("i", [19, 27, 38])
def test_a_skeleton_in_a_pattern_on_someone_is_not_a_second_person(detector, i):
    """Synthetic people at 512 x 352 (seeds [31, i]: long hair seen from the back, feet seen
    from the back, a checked top) in whom a window finds a small skeleton of its own. Its
    mask lies within hers and is a fraction of its size: one person, her mask whole."""
    person = synthetic_person([31, i], "back" if i % 4 == 3 else "front", (512, 352))
    people = detector.detect_people(person["image"])
    assert len(people) == 1
    assert mask_iou(person["parsing"] > 0, people[0].mask) > 0.9


def half_body(person: dict, keep: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """The photo and silhouette of ``person`` cut below ``keep`` of the body's height (from
    the top of the head): a half-body photo, the legs out of the frame."""
    rows = np.nonzero((person["parsing"] > 0).any(1))[0]
    cut = int(rows[0] + keep * (rows[-1] - rows[0]))
    return np.ascontiguousarray(person["image"][:cut]), person["parsing"][:cut] > 0


def test_a_half_body_back_view_drawn_both_ways_round_is_one_person(detector):
    """A synthetic back view at 512 x 352 (seed [31, 11]) cut at mid-thigh: BlazePose draws
    her as seen from the back in one view and as seen from the front in another. Compared
    as drawn, their left and right joints lie a shoulder width apart and she became two
    people, each with half her mask."""
    image, silhouette = half_body(synthetic_person([31, 11], "back", (512, 352)))
    people = detector.detect_people(image)
    assert len(people) == 1
    assert mask_iou(silhouette, people[0].mask) > 0.95


def test_a_half_body_back_view_with_a_skeleton_in_her_hair(detector):
    """A synthetic back view at 512 x 352 (seed [31, 19]) cut at mid-thigh: on the whole photo
    BlazePose finds only a skeleton in her long hair, and finds her whole only with a
    border around the photo. The bordered runs look for people the whole-photo run missed,
    and the skeleton, a pattern on her, does not make her a piece of itself."""
    image, silhouette = half_body(synthetic_person([31, 19], "back", (512, 352)))
    people = detector.detect_people(image)
    assert len(people) == 1
    assert mask_iou(silhouette, people[0].mask) > 0.9


def test_a_bordered_run_adds_no_skeleton_drawn_over_someone_found(detector):
    """A synthetic back view at 256 x 176 (seed [11, 15]) found whole on the photo; with a
    border BlazePose draws an upside-down skeleton over most of her. It is no one new: a
    bordered run beside someone found adds only a person mostly outside their masks."""
    person = synthetic_person([11, 15], "back")
    people = detector.detect_people(person["image"])
    assert len(people) == 1
    assert mask_iou(person["parsing"] > 0, people[0].mask) > 0.9


def test_one_skeleton_drawn_both_ways_round_is_one_person():
    """Hand-made BlazePose skeletons: the same one with left and right exchanged is the same
    person (BlazePose draws one person either way round in different views); the same
    one moved by its own width is not."""
    from spgnet.photo.detect import _MIRRORED, Detection, _same_person

    xy = np.zeros((33, 2), np.float32)
    joints = {0: (0, 20), 11: (30, 50), 12: (-30, 50), 13: (55, 90), 14: (-55, 90), 15: (70, 130), 16: (-70, 130),
              23: (18, 110), 24: (-18, 110), 25: (22, 155), 26: (-22, 155), 27: (25, 200), 28: (-25, 200)}
    for j, p in joints.items():
        xy[j] = p
    xy += (150, 10)
    seen = np.zeros((33, 1), np.float32)
    seen[list(joints)] = 1.0

    def person(points):
        return Detection(keypoints=np.zeros((18, 2), np.float32), mask=np.ones((240, 400), bool), score=1.0,
                         landmarks=np.concatenate([points, seen], 1))

    a = person(xy)
    mirrored = person(xy[_MIRRORED])
    assert _same_person(a, mirrored, (240, 400)) and _same_person(mirrored, a, (240, 400))
    assert not _same_person(a, person(xy + (140, 0)), (240, 400))


def test_back_views_drawn_from_the_front_are_mirrored(detector):
    """BlazePose draws some back views as if seen from the front: the person's right
    shoulder on the image's left (synthetic back views at 256 x 176, seeds [41, 7] and
    [41, 13]). Once the view is decided to be the back, the skeleton is mirrored: every
    side-specific joint lies nearer its own ground truth than its mirror partner's."""
    for i in (7, 13):
        person = synthetic_person([41, i], "back")
        people = detector.detect_people(person["image"])
        assert len(people) == 1 and people[0].facing == "back", i
        own, mirrored = side_errors(person["keypoints"], people[0].keypoints)
        assert len(own) >= 8 and (own < mirrored).mean() >= 0.9, (i, own.round(1), mirrored.round(1))


def test_the_face_oval_follows_mediapipes_edges():
    """The face outline's landmark path walks mediapipe's own FACEMESH_FACE_OVAL edges once
    each, closed (it fails on a missing, repeated or reordered landmark)."""
    from mediapipe.python.solutions.face_mesh import FACEMESH_FACE_OVAL

    from spgnet.photo.detect import _FACE_OVAL

    path = [int(i) for i in _FACE_OVAL]
    walked = {frozenset(e) for e in zip(path, path[1:] + path[:1])}
    assert len(walked) == len(path) == len(FACEMESH_FACE_OVAL)
    assert walked == {frozenset(e) for e in FACEMESH_FACE_OVAL}


def test_face_outline_on_the_astronaut(detector, astronaut):
    """FaceMesh's oval around the astronaut's face (found by the person search, a front
    view): it encloses BlazePose's nose and eyes, lies on her mask, and its lowest point
    (the chin) is below the mouth's landmarks."""
    from skimage.measure import points_in_poly

    (person,) = detector.detect_people(astronaut)
    outline = person.face_outline
    assert person.facing == "front" and outline is not None and outline.shape == (36, 2)
    face = person.landmarks[[0, 2, 5], :2]  # nose, eyes
    assert points_in_poly(face, outline).all()
    xy = np.rint(outline).astype(int)
    assert person.mask[xy[:, 1], xy[:, 0]].mean() > 0.9
    assert outline[:, 1].max() > person.landmarks[[9, 10], 1].max()
    # no face where there is none: a blank window, and too few points
    assert detector.face_outline(np.full((200, 200, 3), 128, np.uint8), np.array([[90.0, 90], [110, 90]])) is None
    assert detector.face_outline(astronaut, face[:1]) is None


def test_no_face_outline_for_a_face_in_profile(detector):
    """skimage's cameraman, his face in profile: FaceMesh's oval shrinks to a crescent on his
    cheek that leaves his nose out (labelled by it, nose and mouth became hair). An outline
    must hold BlazePose's nose, so he gets none and the parsing keeps the face ellipse."""
    from skimage.measure import points_in_poly

    photo = np.repeat(data.camera()[..., None], 3, axis=2)
    (person,) = detector.detect_people(photo)
    assert person.facing == "front" and person.face_outline is None
    crescent = detector.face_outline(photo, person.landmarks[:11, :2])  # without the check
    assert crescent is not None and not points_in_poly(person.landmarks[:1, :2], crescent).all()


def test_the_face_outline_gives_a_framed_face_its_shape(detector):
    """A synthetic woman at 512 x 352 (seed [31, 4]) whose hair frames her face: from her true
    keypoints and silhouette, the face ellipse takes hair for face (face IoU 0.72, hair
    0.71); FaceMesh's outline of her face gives the face its shape."""
    person = synthetic_person([31, 4], "front", (512, 352))
    truth, kp = person["parsing"], person["keypoints"]
    face = kp[[0, 14, 15, 16, 17]]
    outline = detector.face_outline(person["image"], face[(face >= 0).all(1)])
    assert outline is not None
    labels = coarse_parsing(truth > 0, kp, person["image"], facing="front", face_outline=outline)
    assert mask_iou(truth == L["face"], labels == L["face"]) > 0.9
    assert mask_iou(truth == L["hair"], labels == L["hair"]) > 0.85


def test_the_landmark_mirror_follows_mediapipes_names():
    """The mirror table exchanges each LEFT_* landmark with its RIGHT_* partner (mediapipe's
    own PoseLandmark names) and keeps the nose."""
    from spgnet.photo.detect import _MIRRORED

    index = blazepose_index()
    expected = np.empty(len(index), int)
    for name, i in index.items():
        expected[i] = index[name.replace("LEFT", "#").replace("RIGHT", "LEFT").replace("#", "RIGHT")]
    assert _MIRRORED.tolist() == expected.tolist()


def test_handedness_of_hand_made_skeletons():
    """The sign of the skeleton's side, on landmarks placed by hand: upright from the front
    (left shoulder at the image's right) +1, from the back -1; a rotation keeps the sign
    (upside down or lying, seen from the front: +1); profile 0."""
    from spgnet.photo.detect import _handedness

    def skeleton(l_sh, r_sh, l_hip, r_hip):
        lm = np.zeros((33, 3), np.float32)
        lm[11, :2], lm[12, :2], lm[23, :2], lm[24, :2] = l_sh, r_sh, l_hip, r_hip
        return lm

    assert _handedness(skeleton((60, 40), (40, 40), (58, 90), (42, 90))) == pytest.approx(1.0)
    assert _handedness(skeleton((40, 40), (60, 40), (42, 90), (58, 90))) == pytest.approx(-1.0)
    # the upright front view turned by 180 degrees: the left shoulder at the image's left
    assert _handedness(skeleton((40, 90), (60, 90), (42, 40), (58, 40))) == pytest.approx(1.0)
    # turned by 90 degrees, head to the image's left: the left shoulder above the right one
    assert _handedness(skeleton((40, 40), (40, 60), (90, 42), (90, 58))) == pytest.approx(1.0)
    assert abs(_handedness(skeleton((50, 40), (50, 40), (50, 90), (50, 90)))) < 1e-6


def test_astronaut_with_colours_suit_ring_is_not_hair(detector, astronaut):
    """With the photo, as ``prepare`` sees her (every person, the default visibility): the
    glints on the suit's metal neck ring, some of the hair's colour and touching her hair,
    are not long hair (thin lines, not locks); the top of her head is."""
    from spgnet.photo.prepare import DEFAULT_VISIBILITY

    with PoseDetector(DEFAULT_VISIBILITY) as det:
        d = det.detect_people(astronaut)[0]
    labels = coarse_parsing(d.mask, d.keypoints, astronaut, facing=d.facing)
    j = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    eyes, nose = d.keypoints[[j["r-eye"], j["l-eye"]]], d.keypoints[j["nose"]]
    gap = float(np.linalg.norm(eyes[1] - eyes[0]))
    below_chin = np.arange(labels.shape[0])[:, None] > nose[1] + 1.5 * gap
    assert ((labels == 2) & below_chin).sum() < 50
    top_of_head = np.flatnonzero(d.mask[:, int(nose[0])])[0]
    assert labels[top_of_head + 5, int(nose[0])] == 2
