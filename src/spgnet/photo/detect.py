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

Only the most prominent person is returned (BlazePose tracks one); the segmentation
mask (``segmentation_mask >= 0.5``) is the model's person mask for that detection.
Results are deterministic: every image is processed on its own (static-image mode, no
smoothing across images), on CPU, with the same weights.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

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


@dataclass
class Detection:
    """One person found in an ``(H, W, 3)`` image.

    keypoints  (18, 2) float32  OpenPose-18 (x, y) pixel centres, -1 where not confidently visible
    mask       (H, W) bool      person segmentation
    score      float            mean BlazePose visibility of the landmarks the 18 joints come from
    landmarks  (33, 3) float32  raw BlazePose landmarks: x, y (pixel centres, may lie off the
                                image), visibility
    """

    keypoints: np.ndarray
    mask: np.ndarray
    score: float
    landmarks: np.ndarray


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
    a context manager or call :meth:`close` to free the mediapipe graph.
    """

    def __init__(self, visibility_threshold: float = 0.5, min_detection_confidence: float = 0.5):
        if not 0.0 <= visibility_threshold <= 1.0:
            raise SPGNetError(f"visibility threshold must lie in [0, 1], got {visibility_threshold}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise SPGNetError(f"min detection confidence must lie in [0, 1], got {min_detection_confidence}")
        mp_pose = _import_pose_solution()
        self.visibility_threshold = float(visibility_threshold)
        # The graph opens its models on threads of its own, which log their start-up: fd 2
        # stays silenced from construction through one blank image (by then every model is
        # open) and up to the first image with a person (the landmark model's first run).
        self._quiet = True
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

    def detect_one(self, image: np.ndarray) -> Detection | None:
        """``(H, W, 3)`` uint8 RGB -> :class:`Detection`, or None when no person is found."""
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
        mask = (
            np.asarray(result.segmentation_mask) >= MASK_THRESHOLD
            if result.segmentation_mask is not None
            else np.zeros((h, w), bool)
        )
        return Detection(
            keypoints=landmarks_to_openpose18(raw, (h, w), self.visibility_threshold),
            mask=mask,
            score=float(raw[_SOURCES, 2].mean()),
            landmarks=raw,
        )

    def __call__(self, images: Iterable[np.ndarray]) -> list[Detection | None]:
        return [self.detect_one(im) for im in images]


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
    "BLAZEPOSE_TO_OPENPOSE18", "NUM_BLAZEPOSE_LANDMARKS", "MASK_THRESHOLD", "Detection", "PoseDetector",
    "landmarks_to_openpose18", "detect", "detect_keypoints",
]
