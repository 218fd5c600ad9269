"""Keypoints and a person mask for your own photos (docs/design.md §11), offline, with mediapipe.

MediaPipe Pose (BlazePose GHUM, 33 landmarks, ``model_complexity=1`` = the *full*
landmark model) in static-image mode, with its person segmentation enabled. mediapipe
0.10.14 ships that model and the person detector inside its wheel
(``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``,
``mediapipe/modules/pose_detection/pose_detection.tflite``); the *lite* and *heavy*
landmark models are not in the wheel and would be downloaded, so they are not offered.
The Tasks API (``mediapipe.tasks.vision.PoseLandmarker``) needs a ``.task`` bundle that
the wheel does not contain, hence the ``mediapipe.solutions.pose`` API.

BlazePose -> OpenPose COCO-18 (the person's right = OpenPose "r-" = BlazePose "right_"):

    ====  ===========  =====================================================
    OP18  name         BlazePose landmark(s)
    ====  ===========  =====================================================
    0     nose         0  nose
    1     neck         midpoint of 11 left_shoulder and 12 right_shoulder
                       (present only when both shoulders are)
    2     r-shoulder   12 right_shoulder
    3     r-elbow      14 right_elbow
    4     r-wrist      16 right_wrist
    5     l-shoulder   11 left_shoulder
    6     l-elbow      13 left_elbow
    7     l-wrist      15 left_wrist
    8     r-hip        24 right_hip
    9     r-knee       26 right_knee
    10    r-ankle      28 right_ankle
    11    l-hip        23 left_hip
    12    l-knee       25 left_knee
    13    l-ankle      27 left_ankle
    14    r-eye        5  right_eye (eye centre)
    15    l-eye        2  left_eye (eye centre)
    16    r-ear        8  right_ear
    17    l-ear        7  left_ear
    ====  ===========  =====================================================

A joint is present when its BlazePose ``visibility`` is at least
``visibility_threshold`` (default 0.5) and it lies on the image (BlazePose also
extrapolates joints outside the frame; a detector-made annotation should not contain
them). Landmark coordinates are normalised to the image's edges (0 = left edge, 1 =
right edge), so the pixel-centre coordinate of docs/design.md §2 is ``x * W - 0.5``.
BlazePose hips sit at the hip joints, a little higher and closer together than
OpenPose's COCO hips; no correction is applied.

:meth:`PoseDetector.detect_one` returns the most prominent person (BlazePose tracks one);
its mask is the model's person segmentation, sharpened along the photo's edges by a guided
filter (:func:`refine_mask`), at 0.5. :meth:`PoseDetector.detect_people` finds everyone,
decides each one's view with MediaPipe's face detector and gives front views the face's
outline from MediaPipe FaceMesh (both in the wheel too). Results are deterministic: every
image is processed on its own (static-image mode, no smoothing across images), on CPU, with
the same weights.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from spgnet import SPGNetError
from spgnet.pose import NUM_KEYPOINTS

# OpenPose-18 joint -> BlazePose landmark; the neck (1) is the midpoint of 11 and 12.
BLAZEPOSE_TO_OPENPOSE18: tuple[int | tuple[int, int], ...] = (
    0, (11, 12), 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7,
)
NUM_BLAZEPOSE_LANDMARKS = 33

# Landmark indices behind each OpenPose joint (neck: both shoulders), as arrays for gathering.
_DIRECT = np.array([j if isinstance(j, int) else -1 for j in BLAZEPOSE_TO_OPENPOSE18])
_NECK = 1
_SOURCES = np.array(sorted({i for j in BLAZEPOSE_TO_OPENPOSE18 for i in ((j,) if isinstance(j, int) else j)}))

MASK_THRESHOLD = 0.5
MAX_PEOPLE = 8  # most people reported per image by PoseDetector.detect_people
MIN_FACE_SIDE = 12  # heads smaller than this (pixels) are not checked for a face (see PoseDetector.facing)
FACE_WINDOW = 192  # the window around a head is enlarged to at least this side for the face detector
FACE_SURE = 0.7  # a face found with at least this score settles "front"; weaker ones are checked by colour
MAX_FACES = 3  # faces FaceMesh looks for in the window around one head (a neighbour's may be in it)
MIN_OUTLINE_HEAD = 4  # face points spanning fewer pixels get no outline (FaceMesh runs on the window enlarged)
# FaceMesh's face oval (mediapipe's FACEMESH_FACE_OVAL edges) as one closed path of its
# landmarks: from the top of the forehead (10) down the face's right side (the image's
# left in a front view) to the chin (152) and up the other side
_FACE_OVAL = np.array([10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
                       377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338])
SAME_HEAD_COLOUR = 6.0  # CIELAB distance below which the face's centre and the top of the head are one colour


@dataclass
class Detection:
    """One person found in an ``(H, W, 3)`` image.

    keypoints  (18, 2) float32  OpenPose-18 (x, y) pixel centres, -1 where not confidently visible
    mask       (H, W) bool      person segmentation
    score      float            mean BlazePose visibility of the landmarks the 18 joints come from
    landmarks  (33, 3) float32  raw BlazePose landmarks: x, y (pixel centres, may lie off the
                                image), visibility
    facing     str | None       "front" or "back" (see :meth:`PoseDetector.facing`), None if not decided
    certainty  float            share of the mask's pixels whose segmentation probability is at
                                least 0.9 (1.0 when no probabilities were seen)
    face_outline (K, 2) float32 | None  the face's outline (MediaPipe FaceMesh's face oval, in
                                pixels) of a front view whose face FaceMesh finds, else None
                                (see :meth:`PoseDetector.face_outline`)
    """

    keypoints: np.ndarray
    mask: np.ndarray
    score: float
    landmarks: np.ndarray
    facing: str | None = None  # "front" / "back" once decided by PoseDetector.detect_people, else None
    certainty: float = 1.0
    face_outline: np.ndarray | None = None  # (K, 2) x, y: the face's outline (FaceMesh), front views only


def landmarks_to_openpose18(landmarks: np.ndarray, size: tuple[int, int], visibility_threshold: float = 0.5) -> np.ndarray:
    """BlazePose ``(..., 33, 3)`` (x, y pixel centres, visibility) -> OpenPose-18 ``(..., 18, 2)``.

    A joint is missing (-1) when its visibility is below ``visibility_threshold`` or it
    lies off the ``size = (H, W)`` image (outside ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; a
    joint within half a pixel of the edge is clamped onto the first/last pixel). The neck
    is the shoulders' midpoint, present when both shoulders are.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape[-2:] != (NUM_BLAZEPOSE_LANDMARKS, 3):
        raise SPGNetError(f"BlazePose landmarks must have shape (..., 33, 3), got {lm.shape}")
    h, w = size
    xy, vis = lm[..., :2], lm[..., 2]
    on_image = (xy[..., 0] >= -0.5) & (xy[..., 0] <= w - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] <= h - 0.5)
    present = (vis >= visibility_threshold) & on_image  # (..., 33)
    xy = np.clip(xy, 0.0, np.array([w - 1, h - 1], dtype=np.float32))
    src = np.where(_DIRECT >= 0, _DIRECT, 0)
    kp = xy[..., src, :]  # (..., 18, 2)
    ok = present[..., src]
    ok[..., _NECK] = present[..., 11] & present[..., 12]
    kp[..., _NECK, :] = 0.5 * (xy[..., 11, :] + xy[..., 12, :])
    return np.where(ok[..., None], kp, np.float32(-1)).astype(np.float32)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The guided filter of He, Sun and Tang (ECCV 2010) with a colour guide.

    ``guide (H, W, 3)`` float in [0, 1], ``src (H, W)`` float, box windows of side
    ``2 * radius + 1`` (reflected at the borders), regulariser ``eps``. Per window the
    output is a linear function of the guide's colour, ``a . I + b``, fitted to ``src``
    by ridge regression (``a = (cov(I) + eps E)^-1 cov(I, src)``, the 3 x 3 inverse in
    closed form); the coefficients are averaged over the windows that cover a pixel.
    Returns ``(H, W)`` float32.
    """
    from scipy.ndimage import uniform_filter

    size = 2 * int(radius) + 1
    guide = np.asarray(guide, dtype=np.float32)
    src = np.asarray(src, dtype=np.float32)

    def box(x: np.ndarray) -> np.ndarray:  # the mean over each window
        return uniform_filter(x, size=size, mode="reflect")

    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    mr, mg, mb, mp = box(r), box(g), box(b), box(src)
    # covariances of the guide (+ eps on the diagonal) and of guide and src
    rr, rg, rb = box(r * r) - mr * mr + eps, box(r * g) - mr * mg, box(r * b) - mr * mb
    gg, gb, bb = box(g * g) - mg * mg + eps, box(g * b) - mg * mb, box(b * b) - mb * mb + eps
    pr, pg, pb = box(r * src) - mr * mp, box(g * src) - mg * mp, box(b * src) - mb * mp
    # the symmetric 3 x 3 inverse by cofactors
    c_rr, c_rg, c_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    c_gg, c_gb, c_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * c_rr + rg * c_rg + rb * c_rb
    ar = (c_rr * pr + c_rg * pg + c_rb * pb) / det
    ag = (c_rg * pr + c_gg * pg + c_gb * pb) / det
    ab = (c_rb * pr + c_gb * pg + c_bb * pb) / det
    offset = mp - ar * mr - ag * mg - ab * mb
    return (box(ar) * r + box(ag) * g + box(ab) * b + box(offset)).astype(np.float32)


def refine_mask(image: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The person probability ``(H, W)`` sharpened along the photo's edges.

    BlazePose segments at 256 x 256 and its mask is upsampled, so its border is a few pixels
    soft; a :func:`guided_filter` with the photo as guide (radius ``H / 128``, at least 2 px;
    eps (7 / 255)^2) moves it onto the photo's edges. Only the box around the mask (plus
    twice the radius) is filtered. Synthetic people at 512 x 352: median mask IoU with the
    true silhouette 0.973 -> 0.993 (docs/photos.md)."""
    prob = np.asarray(probability, dtype=np.float32)
    h, w = prob.shape
    ys, xs = np.nonzero(prob >= 0.05)
    if ys.size == 0:
        return prob
    radius = max(2, round(h / 128))
    m = 2 * radius
    y0, y1, x0, x1 = max(0, ys.min() - m), min(h, ys.max() + m + 1), max(0, xs.min() - m), min(w, xs.max() + m + 1)
    out = prob.copy()
    out[y0:y1, x0:x1] = guided_filter(np.asarray(image[y0:y1, x0:x1], np.float32) / 255.0, prob[y0:y1, x0:x1],
                                      radius, (7.0 / 255.0) ** 2)
    return out


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null: the TFLite/absl start-up lines are not ours to print."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_pose_solution():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mediapipe.python.solutions import pose as mp_pose
    except ImportError as exc:
        raise SPGNetError(
            f"keypoint detection needs mediapipe 0.10.14 ({exc}); install it with: pip install 'spgnet[photo]'"
        ) from None
    return mp_pose


class PoseDetector:
    """A reusable BlazePose + segmentation detector (construction is the slow part).

    ``detector(images)`` -> ``list[Detection | None]`` (None: no person found). Use it as
    a context manager or call :meth:`close` to free the mediapipe graph. ``keypoint_model``
    (e.g. :class:`spgnet.photo.learned_keypoints.VitPoseKeypoints`): the people that
    :meth:`detect_people` finds get their keypoints from it instead of BlazePose.
    """

    def __init__(self, visibility_threshold: float = 0.5, min_detection_confidence: float = 0.5,
                 keypoint_model=None):
        if not 0.0 <= visibility_threshold <= 1.0:
            raise SPGNetError(f"visibility threshold must lie in [0, 1], got {visibility_threshold}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise SPGNetError(f"min detection confidence must lie in [0, 1], got {min_detection_confidence}")
        mp_pose = _import_pose_solution()
        self.visibility_threshold = float(visibility_threshold)
        # a learned model that re-estimates the keypoints of the people found (detect_people):
        # spgnet.photo.learned_keypoints.VitPoseKeypoints; None keeps BlazePose's
        self.keypoint_model = keypoint_model
        # The graph opens its models on threads of its own, which log their start-up: fd 2
        # stays silenced from construction through one blank image (by then every model is
        # open) and up to the first image with a person (the landmark model's first run).
        self._quiet = True
        self._faces = None  # the face detector behind facing(), built on first use
        self._mesh = None  # FaceMesh behind face_outline(), built on first use
        with _native_stderr_silenced():
            self._pose = mp_pose.Pose(
                static_image_mode=True, model_complexity=1, smooth_landmarks=False, enable_segmentation=True,
                smooth_segmentation=False, min_detection_confidence=min_detection_confidence,
            )
            self._process(np.zeros((32, 32, 3), np.uint8), silence=False)

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None
        if self._faces is not None:
            self._faces.close()
            self._faces = None
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _process(self, image: np.ndarray, silence: bool = True):
        if self._pose is None:
            raise SPGNetError("this PoseDetector has been closed")
        quiet = _native_stderr_silenced() if self._quiet and silence else contextlib.nullcontext()
        with quiet, warnings.catch_warnings():
            # protobuf's deprecation warning from inside mediapipe, once per process
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype")
            result = self._pose.process(image)
        if result.pose_landmarks is not None:
            self._quiet = False
        return result

    def detect_one(self, image: np.ndarray, refine: bool = True) -> Detection | None:
        """``(H, W, 3)`` uint8 RGB -> :class:`Detection`, or None when no person is found.
        ``refine=False`` keeps BlazePose's own mask (the person search compares many views
        and sharpens only the masks of the people it keeps)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SPGNetError(f"keypoint detection needs (H, W, 3) uint8 RGB images, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        result = self._process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None
        raw = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)  # (33, 3)
        raw[:, 0] = raw[:, 0] * w - 0.5  # normalised (edge) coordinates -> pixel centres
        raw[:, 1] = raw[:, 1] * h - 0.5
        if result.segmentation_mask is not None:
            probability = np.asarray(result.segmentation_mask, dtype=np.float32)
            person = probability >= MASK_THRESHOLD
            certainty = float((probability >= SURE_PIXEL).sum() / person.sum()) if person.any() else 0.0
            mask = (refine_mask(image, probability) if refine else probability) >= MASK_THRESHOLD
        else:
            mask, certainty = np.zeros((h, w), bool), 1.0
        return Detection(
            keypoints=landmarks_to_openpose18(raw, (h, w), self.visibility_threshold),
            mask=mask,
            score=float(raw[_SOURCES, 2].mean()),
            landmarks=raw,
            certainty=certainty,
        )

    def __call__(self, images: Iterable[np.ndarray]) -> list[Detection | None]:
        return [self.detect_one(im) for im in images]

    # ------------------------------------------------------------------ several people

    def _detect_window(self, image: np.ndarray, box: tuple[int, int, int, int]) -> Detection | None:
        """:meth:`detect_one` on ``image[y0:y1, x0:x1]``, returned in the whole image's frame
        (landmarks shifted, the mask placed into an image-sized canvas)."""
        x0, y0, x1, y1 = box
        found = self.detect_one(np.ascontiguousarray(image[y0:y1, x0:x1]), refine=False)
        if found is None:
            return None
        mask = np.zeros(image.shape[:2], bool)
        mask[y0:y1, x0:x1] = found.mask
        return self._moved(found, x0, y0, mask)

    def _moved(self, found: Detection, dx: float, dy: float, mask: np.ndarray) -> Detection:
        """``found`` with its landmarks shifted by ``(dx, dy)`` into the frame of ``mask``."""
        lm = found.landmarks.copy()
        lm[:, 0] += dx
        lm[:, 1] += dy
        return Detection(landmarks_to_openpose18(lm, mask.shape, self.visibility_threshold), mask, found.score, lm,
                         certainty=found.certainty)

    def _detect_padded(self, image: np.ndarray, pad: float) -> Detection | None:
        """:meth:`detect_one` on ``image`` with a border of ``pad`` times its size on every
        side (its edge pixels repeated), returned in the image's own frame: a person who
        fills the whole frame appears smaller, as BlazePose's person detector expects."""
        h, w = image.shape[:2]
        py, px = max(1, round(pad * h)), max(1, round(pad * w))
        found = self.detect_one(np.pad(image, ((py, py), (px, px), (0, 0)), mode="edge"), refine=False)
        return None if found is None else self._moved(found, -px, -py, found.mask[py : py + h, px : px + w])

    def facing(self, image: np.ndarray, d: Detection) -> str:
        """``"front"`` or ``"back"``: which side of the person ``d`` the photo shows.

        BlazePose places a nose and eyes on the back of a head too (with high visibility),
        so the view is decided by two other cues:

        * MediaPipe's short-range face detector (in the wheel) on a square window around
          BlazePose's face landmarks (0-10), three head sizes wide (enlarged to
          :data:`FACE_WINDOW` first when smaller). No face found on a head of at least
          :data:`MIN_FACE_SIDE` pixels: a back view. A face found with a score of at least
          :data:`FACE_SURE`: a front view.
        * Otherwise (a head too small for the face detector, or a weak face) the colours
          decide: on a back view the place where BlazePose puts the face is hair, the
          colour of the top of the head; on a front view it is skin below a hairline. The
          median CIELAB colours of the two places (on the person mask) closer than
          :data:`SAME_HEAD_COLOUR` mean a back view. (A bald head seen from the front is
          one colour too; that is why a confident face overrules this cue.)
        """
        head = _head_window(image, d.landmarks[:11, :2], MIN_FACE_SIDE)
        if head is not None:
            score = self._face_score(head[0])
            if score == 0.0:
                return "back"
            if score >= FACE_SURE:
                return "front"
        one_colour = _head_is_one_colour(image, d)
        return "back" if one_colour else "front"

    def _face_score(self, window: np.ndarray) -> float:
        """The best face detection score in ``window`` (0 when none)."""
        if self._faces is None:
            with _native_stderr_silenced(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from mediapipe.python.solutions import face_detection

                self._faces = face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        window, _ = _enlarged(window)  # small heads: enlarged, as the face detector expects
        with _native_stderr_silenced(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype")
            found = self._faces.process(window)
        return max((float(f.score[0]) for f in found.detections or []), default=0.0)

    def face_outline(self, image: np.ndarray, face: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray | None:
        """The outline ``(K, 2)`` (x, y pixels, in order around the face) of the face whose
        points ``face (N, 2)`` (nose, eyes, ears: BlazePose's or OpenPose's, at least two)
        give, or None when MediaPipe's FaceMesh (in the wheel) finds no face there.

        FaceMesh runs on a square window three head sizes wide around the points (enlarged
        to at least :data:`FACE_WINDOW`, as for :meth:`facing`); of the faces it finds
        there, the one whose outline's centre lies nearest the points' centre, and within
        one head size of it (a neighbour's face in the window is not this person's). The
        outline is FaceMesh's face oval: along the jaw and across the upper forehead, the
        ears outside it. ``inside (M, 2)``: points that must lie within it (BlazePose's
        nose): seen in profile, FaceMesh's oval shrinks to a crescent on the cheek that
        leaves the nose and mouth out, and no outline is better than that one.
        """
        face = np.asarray(face, dtype=np.float64).reshape(-1, 2)
        found = _head_window(image, face, MIN_OUTLINE_HEAD) if len(face) >= 2 else None
        if found is None:
            return None
        window, x0, y0, centre, head = found
        window, f = _enlarged(window)
        if self._mesh is None:
            with _native_stderr_silenced(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from mediapipe.python.solutions import face_mesh

                self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=MAX_FACES,
                                                min_detection_confidence=0.5)
        with _native_stderr_silenced(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype")
            found = self._mesh.process(window)
        scale = np.array([window.shape[1] / f, window.shape[0] / f])
        outlines = [np.array([(p.x, p.y) for p in (m.landmark[i] for i in _FACE_OVAL)]) * scale + (x0, y0)
                    for m in found.multi_face_landmarks or []]
        if not outlines:
            return None
        best = min(outlines, key=lambda o: float(np.linalg.norm(o.mean(0) - centre)))
        if float(np.linalg.norm(best.mean(0) - centre)) > head:
            return None
        from skimage.measure import points_in_poly

        if inside is not None and not points_in_poly(np.asarray(inside, dtype=np.float64).reshape(-1, 2), best).all():
            return None
        return best.astype(np.float32)

    def detect_people(self, image: np.ndarray, max_people: int = MAX_PEOPLE) -> list[Detection]:
        """Every person found in an ``(H, W, 3)`` uint8 RGB image, sorted left to right.

        BlazePose follows one person per run, so the search runs it several times (see
        :func:`find_people`): on the whole image, again with each person found so far
        painted over, and on overlapping half-size windows (images whose short side is at
        least :data:`WINDOW_MIN_SIDE`), where people too small for the whole-image run are
        found; and with borders around the photo (:data:`FRAME_PADS`): BlazePose's person
        detector misses some people who fill the frame, or finds only a skeleton in their
        hair; when the whole-image run found someone, the bordered runs only add people not
        yet found and mostly outside the masks of those found. Candidates that are the same
        person (their landmarks close, compared as drawn and with left and right exchanged)
        are merged, a candidate whose mask lies within a sure one's and is at most a quarter
        of its size (a skeleton in long hair or on a checked top) is dropped, each person is
        detected once more on windows around it, and of all its views the one with the
        highest visibility times segmentation certainty gives its keypoints and mask (a
        skeleton mixed from two overlapping people is seen with high visibility but an
        unsure segmentation). A candidate more of whose closer looks show someone already
        found than show itself was a piece of them (a body cut by a window) and goes, as
        does one whose mask lies within someone's found and is at most a quarter of its
        size; people other than the whole-image run's whose segmentation is unsure (on
        average over their views, fewer than :data:`MIN_CERTAINTY` of their mask pixels at
        probability :data:`SURE_PIXEL`: a skeleton seen in a shadow or in a machine) are
        dropped, and every mask is restricted to the pixels nearer this person's skeleton
        than anyone else's. Each person's view is decided (:meth:`facing`); a back view
        whose skeleton BlazePose drew as if seen from the front (the person's left shoulder
        on the image's left of an upright body, see :func:`_handedness`) is mirrored, left
        and right landmarks exchanged. A front view's face gets its outline
        (:meth:`face_outline`, holding BlazePose's nose). With a ``keypoint_model``, every
        person's 18 keypoints are then re-estimated by it (the rest stays mediapipe's). An
        empty list means no person.
        """
        return find_people(self, image, max_people)


# --------------------------------------------------------------------------- several people

WINDOW_MIN_SIDE = 256  # images with a shorter side are not searched window by window
PRESENT_VISIBILITY = 0.5  # landmark visibility counted as "seen" by the search
MIN_SEEN_LANDMARKS = 3  # a candidate must show at least this many body landmarks ...
MIN_MASK_SUPPORT = 0.5  # ... and at least this fraction of them must lie on its person mask
MIN_BODY_SIDE = 16  # ... and they must span at least this many pixels (height or width)
SURE_PIXEL = 0.9  # segmentation probability of a pixel the model is sure of
MIN_CERTAINTY = 0.75  # a person found beside the first needs this mean share of sure pixels in its masks
SAME_PERSON = 0.15  # median landmark distance, in body sizes, below which two candidates are one person
FRAME_PADS = (0.25, 0.5)  # BlazePose runs again with these borders (of the image's size) around the image
NEW_PIXELS = 0.5  # a person found by a bordered run beside someone found has at most this share of its mask on theirs
CROP_MARGINS = (0.1, 0.25, 0.5)  # margins of the refining windows around a person, in its box's larger side
PART_OF_BODY, INSIDE_BODY = 0.25, 0.9  # a mask this small and this much within someone's is a pattern on them
SURE_HANDED = 0.3  # |sine| between the body's up and its shoulder line above which the skeleton's side is clear

# BlazePose landmarks of the body (nose, shoulders, elbows, wrists, hips, knees, ankles)
# and the bones between them, for comparing candidates and sharing the mask.
_BODY = np.array([0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
_BONES = np.array([(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
                   (23, 25), (25, 27), (24, 26), (26, 28), (0, 11), (0, 12)])


# Each BlazePose landmark's mirror partner (left <-> right; nose 0 is its own).
_MIRRORED = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15,
                      18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28, 27, 30, 29, 32, 31])


def _head_window(image: np.ndarray, face: np.ndarray, min_head: float):
    """The square window three head sizes wide around the face points ``face (N, 2)``,
    clipped to the image: ``(window, x0, y0, centre, head)``, where the head size is the
    points' larger extent (at least 1 px) and ``centre`` their mean; None when the head is
    smaller than ``min_head`` or the clipped window narrower than :data:`MIN_FACE_SIDE`."""
    h, w = image.shape[:2]
    centre = face.mean(0)
    head = max(float(np.ptp(face[:, 0])), float(np.ptp(face[:, 1])), 1.0)
    x0, y0 = int(max(0, centre[0] - 1.5 * head)), int(max(0, centre[1] - 1.5 * head))
    x1, y1 = int(min(w, centre[0] + 1.5 * head)), int(min(h, centre[1] + 1.5 * head))
    if head < min_head or x1 - x0 < MIN_FACE_SIDE or y1 - y0 < MIN_FACE_SIDE:
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1]), x0, y0, centre, head


def _enlarged(window: np.ndarray) -> tuple[np.ndarray, float]:
    """``window`` enlarged (bicubic) to at least :data:`FACE_WINDOW` on its shorter side,
    as MediaPipe's face models expect, and the factor (1 when large enough)."""
    f = FACE_WINDOW / min(window.shape[:2])
    if f <= 1.0:
        return window, 1.0
    return np.asarray(Image.fromarray(window).resize(
        (round(window.shape[1] * f), round(window.shape[0] * f)), Image.Resampling.BICUBIC)), f


def _handedness(landmarks: np.ndarray) -> float:
    """Which way round a BlazePose skeleton is drawn: the sine of the angle from the body's
    up (hips' midpoint -> shoulders' midpoint) to its shoulder line (right -> left shoulder),
    in image coordinates. Seen from the front the person's left shoulder lies to the right
    of the up direction (+1 for an upright person); seen from the back, to its left (-1);
    near 0 in profile.

    BlazePose draws some back views as if seen from the front (the person's left side on
    the image's left): :func:`find_people` mirrors a skeleton whose handedness contradicts
    the view it decided.
    """
    xy = landmarks[:, :2].astype(np.float64)
    up = (xy[11] + xy[12]) / 2 - (xy[23] + xy[24]) / 2
    across = xy[11] - xy[12]
    return float(up[0] * across[1] - up[1] * across[0]) / (float(np.linalg.norm(up) * np.linalg.norm(across)) + 1e-9)


def _seen(d: Detection, size: tuple[int, int]) -> np.ndarray:
    """``(33,)`` bool: landmarks of ``d`` seen (visibility) and on the ``size = (H, W)`` image."""
    h, w = size
    xy, vis = d.landmarks[:, :2], d.landmarks[:, 2]
    return (vis >= PRESENT_VISIBILITY) & (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)


def person_box(d: Detection, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)``: the box of the seen body landmarks of ``d`` (all landmarks if none is seen)."""
    seen = _seen(d, size)
    xy = d.landmarks[seen if seen.any() else slice(None), :2]
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _head_is_one_colour(image: np.ndarray, d: Detection) -> bool:
    """Whether the face's centre (between nose and mouth) has the colour of the top of the head.

    Head width: the ears' distance, at least 0.35 shoulder widths and 3 px. The face's
    centre is a disk of a quarter head width around the midpoint of nose and mouth; the top
    of the head a disk of the same size 0.6 head widths above the eyes, "above" being the
    hips-to-shoulders direction (straight up when the hips are not seen). Only pixels on
    the person's mask count; a region with fewer than 3 of them answers False (undecided:
    front).
    """
    from skimage.color import rgb2lab

    h, w = image.shape[:2]
    lm = d.landmarks[:, :2].astype(np.float64)
    vis = d.landmarks[:, 2]
    width = max(float(np.linalg.norm(lm[7] - lm[8])), 0.35 * float(np.linalg.norm(lm[11] - lm[12])), 3.0)
    up = np.array([0.0, -1.0])
    if min(vis[23], vis[24]) >= PRESENT_VISIBILITY:
        axis = (lm[11] + lm[12]) / 2 - (lm[23] + lm[24]) / 2
        if np.linalg.norm(axis) > 1e-6:
            up = axis / np.linalg.norm(axis)
    centres = np.stack([(lm[0] + (lm[9] + lm[10]) / 2) / 2, (lm[2] + lm[5]) / 2 + 0.6 * width * up])
    r = 0.25 * width
    colours = []
    for cx, cy in centres:
        x0, x1 = max(0, int(np.floor(cx - r))), min(w, int(np.ceil(cx + r)) + 1)
        y0, y1 = max(0, int(np.floor(cy - r))), min(h, int(np.ceil(cy + r)) + 1)
        if x1 <= x0 or y1 <= y0:
            return False
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r) & d.mask[y0:y1, x0:x1]
        if inside.sum() < 3:
            return False
        pixels = image[y0:y1, x0:x1][inside].reshape(-1, 1, 3)
        colours.append(np.median(rgb2lab(pixels).reshape(-1, 3), axis=0))
    return float(np.linalg.norm(colours[0] - colours[1])) < SAME_HEAD_COLOUR


def _is_person(d: Detection, size: tuple[int, int]) -> bool:
    """Enough body landmarks seen, and most of them on the person mask (not a pattern on a wall)."""
    seen = _seen(d, size)[_BODY]
    if seen.sum() < MIN_SEEN_LANDMARKS:
        return False
    xy = np.rint(d.landmarks[_BODY[seen], :2]).astype(int)
    if np.ptp(xy, axis=0).max() < MIN_BODY_SIDE:  # a few landmarks on a hand or a pole, not a body
        return False
    return float(d.mask[xy[:, 1], xy[:, 0]].mean()) >= MIN_MASK_SUPPORT


def _same_person(a: Detection, b: Detection, size: tuple[int, int]) -> bool:
    """Two candidates are one person when their commonly seen body landmarks lie close together.

    BlazePose draws one person's left and right either way round in different views (a
    back view as if seen from the front), so ``b`` is compared as drawn and mirrored.
    """
    seen_a, seen_b = _seen(a, size), _seen(b, size)
    boxes = np.array([person_box(a, size), person_box(b, size)])
    scale = float(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).max()) + 1e-6
    apart = []
    for order in (slice(None), _MIRRORED):
        common = (seen_a & seen_b[order])[_BODY]
        if common.sum() >= 3:
            idx = _BODY[common]
            apart.append(float(np.median(np.linalg.norm(a.landmarks[idx, :2] - b.landmarks[order][idx, :2], axis=1))))
    if apart:
        return min(apart) < SAME_PERSON * scale
    ix = max(0.0, min(boxes[:, 2]) - max(boxes[:, 0]))
    iy = max(0.0, min(boxes[:, 3]) - max(boxes[:, 1]))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return ix * iy > 0.5 * (areas.sum() - ix * iy)


def _drawn_on(a: Detection, b: Detection) -> bool:
    """Whether the skeleton ``a`` is a pattern on the person ``b`` (long hair, a checked top,
    the feet), not a person: its mask, at most :data:`PART_OF_BODY` of ``b``'s, lies
    almost wholly (:data:`INSIDE_BODY`) within ``b``'s."""
    area = int(a.mask.sum())
    return area <= PART_OF_BODY * int(b.mask.sum()) and int((a.mask & b.mask).sum()) >= INSIDE_BODY * area


def _windows(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Overlapping half-size windows ``(x0, y0, x1, y1)``: 3 x 3 of them, at quarter steps."""
    if min(h, w) < WINDOW_MIN_SIDE:
        return []
    wh, ww = h // 2, w // 2
    return [(round(fx * (w - ww)), round(fy * (h - wh)), round(fx * (w - ww)) + ww, round(fy * (h - wh)) + wh)
            for fy in (0.0, 0.5, 1.0) for fx in (0.0, 0.5, 1.0)]


def _painted_over(image: np.ndarray, found: list[Detection]) -> np.ndarray:
    """``image`` with the box of every found person filled with the image's mean colour."""
    out = image.copy()
    h, w = image.shape[:2]
    fill = image.reshape(-1, 3).mean(0).astype(np.uint8)
    for d in found:
        x0, y0, x1, y1 = person_box(d, (h, w))
        m = 0.15 * max(x1 - x0, y1 - y0)
        out[max(0, int(y0 - 2 * m)) : max(0, int(y1 + m) + 1), max(0, int(x0 - m)) : max(0, int(x1 + m) + 1)] = fill
    return out


def _refine_box(d: Detection, size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """A window around the person ``d``: its box grown by ``margin`` of its larger side (more above, for the head)."""
    h, w = size
    x0, y0, x1, y1 = person_box(d, size)
    m = margin * max(x1 - x0, y1 - y0) + 8.0
    return max(0, int(x0 - m)), max(0, int(y0 - 1.5 * m)), min(w, int(x1 + m) + 1), min(h, int(y1 + m) + 1)


def _bone_distances(points: np.ndarray, d: Detection, size: tuple[int, int]) -> np.ndarray:
    """``(N,)`` distance of ``points (N, 2)`` (x, y) to the nearest seen bone of ``d``."""
    seen = _seen(d, size)
    bones = _BONES[seen[_BONES].all(1)]
    lm = d.landmarks[:, :2].astype(np.float32)
    if len(bones):
        a, b = lm[bones[:, 0]], lm[bones[:, 1]]
    else:  # no whole bone: the seen landmarks (or all) as points
        a = b = lm[seen] if seen.any() else lm
    ab = b - a  # (S, 2)
    ap = points[:, None, :] - a[None]  # (N, S, 2)
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-6), 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(1)


def _share_masks(people: list[Detection], size: tuple[int, int]) -> None:
    """Restrict every person's mask (in place) to the pixels nearer its bones than anyone else's."""
    if len(people) < 2:
        return
    union = np.logical_or.reduce([d.mask for d in people])
    ys, xs = np.nonzero(union)
    points = np.stack([xs, ys], 1).astype(np.float32)
    owner = np.stack([_bone_distances(points, d, size) for d in people]).argmin(0)  # (N,)
    for k, d in enumerate(people):
        mine = np.zeros(size, bool)
        mine[ys[owner == k], xs[owner == k]] = True
        d.mask = d.mask & mine


def _quality(d: Detection) -> float:
    """How much to trust one view of a person: BlazePose's mean visibility times the
    segmentation's certainty. A skeleton mixed from two overlapping people can be seen
    with high visibility, but its segmentation is unsure where the two bodies meet."""
    return d.score * d.certainty


def find_people(detector: PoseDetector, image: np.ndarray, max_people: int = MAX_PEOPLE) -> list[Detection]:
    """The search behind :meth:`PoseDetector.detect_people` (see there)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SPGNetError(f"keypoint detection needs (H, W, 3) uint8 RGB images, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    size = (h, w)
    candidates: list[Detection] = []
    views: list[list[Detection]] = []  # every view of each candidate

    def add(d: Detection | None) -> bool:
        if d is None or not _is_person(d, size):
            return False
        for i, c in enumerate(candidates):
            if _same_person(c, d, size):
                views[i].append(d)
                if _quality(d) > _quality(c):
                    candidates[i] = d
                return False
        candidates.append(d)
        views.append([d])
        return True

    work = image
    for _ in range(max_people):  # the whole image, then with everyone found so far painted over
        if not add(detector._detect_window(work, (0, 0, w, h))):
            break
        work = _painted_over(image, candidates)
    whole = candidates[0] if candidates else None  # BlazePose's own choice on the whole image
    for box in _windows(h, w):
        add(detector._detect_window(image, box))
    for pad in FRAME_PADS:  # a person filling the frame, whom BlazePose's detector may miss or see only in part
        found = detector._detect_padded(image, pad)
        # with someone found on the whole image, a bordered view only adds someone new:
        # not a view of anyone found (the whole-image view stays the one BlazePose is made
        # for), and mostly outside their masks (not a skeleton drawn over someone found)
        if whole is None or (found is not None and not any(_same_person(c, found, size) for c in candidates)
                             and (found.mask & np.logical_or.reduce([c.mask for c in candidates])).sum()
                             < NEW_PIXELS * found.mask.sum()):
            add(found)

    people: list[Detection] = []
    unsure: list[Detection] = []
    # a skeleton in a pattern on someone sure (long hair, a checked top) is no candidate, in
    # whichever order the two were found: its closer looks could take the person for a piece of it
    sure = [c for c in candidates if c is whole or c.certainty >= MIN_CERTAINTY]
    keep = [i for i, c in enumerate(candidates) if not any(o is not c and _drawn_on(c, o) for o in sure)]
    candidates, views = [candidates[i] for i in keep], [views[i] for i in keep]
    for i in sorted(range(len(candidates)), key=lambda i: -candidates[i].score)[:max_people]:
        c = candidates[i]
        if c is whole:  # seen whole and unobstructed: the view BlazePose is made for
            tries = []
        else:  # seen through a window or beside painted-over people: look again around it
            tries = [detector._detect_window(image, _refine_box(c, size, margin)) for margin in CROP_MARGINS]
        seen = [t for t in tries if t is not None and _is_person(t, size)]
        tries = [t for t in seen if _same_person(t, c, size)]
        elsewhere = sum(any(_same_person(p, t, size) for p in people) for t in seen)
        if elsewhere > len(tries):  # most closer looks show someone already found: c was a piece of them
            continue
        d = max([c, *tries], key=_quality)  # the most confident view of this person
        certainty = float(np.mean([t.certainty for t in views[i] + tries]))
        if c is not whole and certainty < MIN_CERTAINTY:  # a skeleton in a shadow or a machine
            unsure.append(d)
            continue
        if not any(_same_person(p, d, size) or _drawn_on(d, p) for p in people):
            people.append(d)
    if not people and unsure:  # nobody sure: the most certain rather than nobody
        people.append(max(unsure, key=lambda t: t.certainty))
    for d in people:  # only the people kept get their masks sharpened along the photo's edges
        d.mask = refine_mask(image, d.mask.astype(np.float32)) >= MASK_THRESHOLD
    _share_masks(people, size)
    for d in people:
        d.facing = detector.facing(image, d)
        if d.facing == "back" and _handedness(d.landmarks) > SURE_HANDED:  # drawn as if seen from the front
            d.landmarks = d.landmarks[_MIRRORED]
            d.keypoints = landmarks_to_openpose18(d.landmarks, size, detector.visibility_threshold)
        if d.facing == "front":
            d.face_outline = detector.face_outline(image, d.landmarks[:11, :2], inside=d.landmarks[:1, :2])
    if detector.keypoint_model is not None and people:
        detector.keypoint_model.refine(image, people)
    return sorted(people, key=lambda d: sum(person_box(d, size)[::2]))


def choose_person(people: list[Detection], how: str | int, size: tuple[int, int]) -> int:
    """Index into ``people`` (sorted left to right) of the person ``how`` names.

    ``"largest"``: the most mask pixels; ``"center"``: the box centre nearest the image
    centre; an int ``K``: the K-th person from the left, counting from 1.
    """
    if not people:
        raise SPGNetError("no person to choose from")
    if how == "largest":
        return int(np.argmax([d.mask.sum() for d in people]))
    if how == "center":
        h, w = size
        centres = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for b in (person_box(d, size) for d in people)])
        return int(np.argmin(np.hypot(centres[:, 0] - (w - 1) / 2, centres[:, 1] - (h - 1) / 2)))
    if isinstance(how, (int, np.integer)) and not isinstance(how, bool):
        if not 1 <= how <= len(people):
            raise SPGNetError(f"person {how}: the photo shows {len(people)} person(s); choose 1 to {len(people)} "
                              "(counted from the left), largest or center")
        return int(how) - 1
    raise SPGNetError(f"person {how!r}: choose largest, center or a number K (the K-th person from the left)")


def parse_person(text: str | int) -> str | int:
    """A ``--person`` value: ``largest``, ``center`` or a positive integer."""
    if isinstance(text, int):
        return text
    t = str(text).strip().lower()
    if t in ("largest", "center", "centre"):
        return "center" if t == "centre" else t
    if t.isdigit() and int(t) >= 1:
        return int(t)
    raise SPGNetError(f"--person {text!r}: choose largest, center or a number K >= 1 (the K-th person from the left)")


def _as_image_list(images) -> Sequence[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [images]
        if images.ndim == 4:
            return list(images)
        raise SPGNetError(f"images must be (H, W, 3) or (N, H, W, 3) uint8, got shape {images.shape}")
    return list(images)


def detect(
    images, visibility_threshold: float = 0.5, detector: PoseDetector | None = None
) -> list[Detection | None]:
    """Detect one person per image.

    ``images``: a list of ``(H, W, 3)`` uint8 RGB arrays (sizes may differ) or an
    ``(N, H, W, 3)`` array. Returns one entry per image: a :class:`Detection`, or
    **None when no person was found**. One detector serves the whole batch; pass
    ``detector`` to reuse one across calls (its threshold then applies).
    """
    images = _as_image_list(images)
    if detector is not None:
        return detector(images)
    with PoseDetector(visibility_threshold) as det:
        return det(images)


def detect_keypoints(images, visibility_threshold: float = 0.5, detector: PoseDetector | None = None) -> np.ndarray:
    """``(N, 18, 2)`` float32 OpenPose-18 (x, y) keypoints; all -1 for an image without a person."""
    found = detect(images, visibility_threshold, detector)
    out = np.full((len(found), NUM_KEYPOINTS, 2), -1.0, dtype=np.float32)
    for i, d in enumerate(found):
        if d is not None:
            out[i] = d.keypoints
    return out


__all__ = [
    "BLAZEPOSE_TO_OPENPOSE18", "NUM_BLAZEPOSE_LANDMARKS", "MASK_THRESHOLD", "MAX_PEOPLE", "Detection", "PoseDetector",
    "person_box", "find_people", "choose_person", "parse_person",
    "landmarks_to_openpose18", "detect", "detect_keypoints", "guided_filter", "refine_mask",
]
