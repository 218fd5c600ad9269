"""An optional learned keypoint model for your own photos (docs/photos.md): ViTPose, a top-down
COCO-17 keypoint estimator, loaded with Hugging Face ``transformers`` from a **local** folder
only, that re-estimates the keypoints of every person :mod:`spgnet.photo.detect` finds.

Why: BlazePose *full*, the only keypoint model in the mediapipe wheel, reaches PCKh@0.5 =
0.79 on the project's real people (docs/photos.md); it is weakest on crossing and crouching
people, whose legs it joins to a neighbour's body. A top-down model trained on COCO should
do better there (not measured here: no weights); users who have its weights can swap it in
with ``--keypoints vitpose --keypoint-weights DIR`` (``DIR``: e.g. ``huggingface-cli
download usyd-community/vitpose-base-simple --local-dir DIR``; nothing is downloaded
here). The person
search, the masks, the front/back decision and the face outline stay mediapipe's; only the
18 keypoints change.

**Per person.** The box is the person's mask together with the body landmarks BlazePose
saw (visibility at least :data:`SEEN_VISIBILITY`, on the photo; :func:`person_region`), in
COCO ``(x, y, w, h)`` form. ``VitPoseImageProcessor`` (from
the folder's ``preprocessor_config.json``, else its defaults: 256x192 input, ImageNet mean
and std) grows it to the model's aspect ratio, pads it by 1.25 and warps it to the input
size; all people of a photo go through the model as one batch. **Flip test** (as ViTPose
evaluates on COCO): the mirrored crops go through too, their heatmaps are mirrored back with
left and right exchanged (``flip_pairs``) and averaged with the direct ones. The processor's
``post_process_pose_estimation`` decodes the heatmaps (maximum, DARK sub-pixel refinement)
into photo pixels, pixel centres at integers as everywhere in the project.

**COCO-17 -> OpenPose-18** (the person's left and right, as both sets define them):

    ====  ===========  ==============================================
    OP18  name         COCO-17 keypoint
    ====  ===========  ==============================================
    0     nose         0 nose
    1     neck         midpoint of 5 left_shoulder and 6 right_shoulder
    2-4   r-shoulder, r-elbow, r-wrist      6, 8, 10
    5-7   l-shoulder, l-elbow, l-wrist      5, 7, 9
    8-10  r-hip, r-knee, r-ankle            12, 14, 16
    11-13 l-hip, l-knee, l-ankle            11, 13, 15
    14-17 r-eye, l-eye, r-ear, l-ear        2, 1, 4, 3
    ====  ===========  ==============================================

A joint is kept when its heatmap score is at least :data:`MIN_SCORE` (0.3, the threshold
ViTPose's and MMPose's demos draw keypoints at) and it lies on the photo; the neck when both
shoulders are kept. The model must predict 17 keypoints in COCO order: a config whose
``id2label`` names COCO keypoints in another order is refused; generic names (``LABEL_0``)
are taken as COCO order. ViTPose++ models (several expert heads in the backbone) run with
dataset index 0, COCO in their training set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from spgnet import SPGNetError
from spgnet.photo.local_models import load_model, model_folder, quiet_transformers, weights_or_env

KEYPOINT_MODELS = ("blazepose", "vitpose")
WEIGHTS_ENV = "SPGNET_KEYPOINT_WEIGHTS"
MIN_SCORE = 0.3  # heatmap score a joint needs to be kept
SEEN_VISIBILITY = 0.5  # BlazePose landmarks at least this visible widen the person's box

COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                "right_knee", "left_ankle", "right_ankle")
# The OpenPose-18 joint each COCO-17 keypoint becomes (the neck, OpenPose 1, is the shoulders' midpoint).
OPENPOSE_FROM_COCO = np.array([0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3])
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _name_key(name: str) -> str:
    """A keypoint name for matching: lowercase, separators dropped, ``l``/``r`` spelled out."""
    key = "".join(c for c in str(name).lower() if c not in " _-.")
    for short, long in (("l", "left"), ("r", "right")):
        if key.startswith(short) and not key.startswith(long) and key[1:] in {n.split("_")[-1] for n in COCO17_NAMES}:
            key = long + key[1:]
    return key


def check_coco_order(id2label: dict | None, where: str) -> None:
    """Refuse a 17-keypoint model whose ``id2label`` names COCO keypoints in another order."""
    if not id2label:
        return
    names = {int(k): str(v) for k, v in id2label.items()}
    expected = {_name_key(n): i for i, n in enumerate(COCO17_NAMES)}
    wrong = [f"{i}={names[i]!r}" for i in sorted(names)
             if _name_key(names[i]) in expected and expected[_name_key(names[i])] != i]
    if wrong:
        raise SPGNetError(f"{where}: its keypoints are not in COCO-17 order ({', '.join(wrong[:4])}"
                          f"{', ...' if len(wrong) > 4 else ''}); a COCO-17 model is needed")


def coco17_to_openpose18(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int],
                         min_score: float = MIN_SCORE) -> np.ndarray:
    """``(..., 17, 2)`` COCO-17 pixel keypoints + ``(..., 17)`` scores -> ``(..., 18, 2)`` OpenPose-18,
    -1 where the score is below ``min_score`` or the joint lies off the ``size = (H, W)``
    photo (outside ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; within half a pixel of the edge it
    is clamped onto the first/last pixel). The neck is the shoulders' midpoint."""
    xy = np.asarray(keypoints, np.float32)
    scores = np.asarray(scores, np.float32)
    h, w = size
    on_image = (xy[..., 0] >= -0.5) & (xy[..., 0] <= w - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] <= h - 0.5)
    kept = (scores >= min_score) & on_image  # (..., 17)
    xy = np.clip(xy, 0.0, np.array([w - 1, h - 1], np.float32))
    src = np.where(OPENPOSE_FROM_COCO >= 0, OPENPOSE_FROM_COCO, 0)
    out = xy[..., src, :]
    ok = kept[..., src]
    out[..., 1, :] = 0.5 * (xy[..., 5, :] + xy[..., 6, :])
    ok[..., 1] = kept[..., 5] & kept[..., 6]
    return np.where(ok[..., None], out, np.float32(-1)).astype(np.float32)


def person_region(mask: np.ndarray, points: np.ndarray) -> tuple[float, float, float, float] | None:
    """COCO box ``(x, y, w, h)`` around a person's ``mask (H, W)`` and ``points (N, 2)`` (x, y;
    e.g. the landmarks seen), pixel centres at integers, so a box is one pixel wider than the
    span of its centres; None when both are empty."""
    ys, xs = np.nonzero(mask)
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    allx = np.concatenate([xs.astype(np.float32), pts[:, 0]])
    ally = np.concatenate([ys.astype(np.float32), pts[:, 1]])
    if allx.size == 0:
        return None
    x0, y0 = allx.min() - 0.5, ally.min() - 0.5
    return float(x0), float(y0), float(allx.max() + 0.5 - x0), float(ally.max() + 0.5 - y0)


class VitPoseKeypoints:
    """ViTPose from a local folder: ``model.predict(image, boxes)`` and ``model.refine(image, people)``
    (module docstring).

    ``weights``: a folder with ``config.json`` (``model_type`` ``vitpose``, 17 keypoints),
    ``model.safetensors`` and optionally ``preprocessor_config.json``. ``flip_test``: average
    with the mirrored crops (default, as ViTPose is evaluated). Attributes: ``input_size``
    ((H, W) of the model's input), ``experts`` (1, or the ViTPose++ expert count), ``weights``.
    """

    def __init__(self, weights: str | os.PathLike, device: str = "cpu", flip_test: bool = True,
                 min_score: float = MIN_SCORE):
        try:
            from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor
        except ImportError:
            raise SPGNetError("the ViTPose keypoints need transformers (4.48 or later); install it with: "
                              "pip install 'spgnet[parser]'") from None
        where = f"keypoint weights {Path(weights).expanduser()}"
        folder, config = model_folder(weights, where, "vitpose", "ViTPose")
        check_coco_order(config.get("id2label"), where)
        if not 0.0 <= min_score <= 1.0:
            raise SPGNetError(f"ViTPose minimum score {min_score}: must lie in [0, 1]")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise SPGNetError(f"keypoint model device {device!r}: {e}") from None
        model = load_model(VitPoseForPoseEstimation, folder, where, "ViTPose", "pose-estimation")
        if model.config.num_labels != len(COCO17_NAMES):
            raise SPGNetError(f"{where}: {model.config.num_labels} keypoints; a COCO-17 model (17) is needed")
        try:
            with quiet_transformers():
                processor = (VitPoseImageProcessor.from_pretrained(folder, local_files_only=True)
                             if (folder / "preprocessor_config.json").is_file() else VitPoseImageProcessor())
        except (OSError, ValueError, TypeError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SPGNetError(f"{folder / 'preprocessor_config.json'}: not a usable ViTPose image processor "
                              f"config ({first})") from None
        backbone = model.config.backbone_config
        self.input_size = (int(processor.size["height"]), int(processor.size["width"]))
        model_size = tuple(int(v) for v in backbone.image_size)
        if self.input_size != model_size:
            raise SPGNetError(f"{where}: the image processor crops {self.input_size[0]}x{self.input_size[1]} "
                              f"but the model takes {model_size[0]}x{model_size[1]}")
        self.model = model.to(self.device)
        self.processor = processor
        self.experts = int(getattr(backbone, "num_experts", 1) or 1)
        self.flip_test = bool(flip_test)
        self.min_score = float(min_score)
        self.weights = folder
        self._flip_pairs = torch.tensor(COCO_FLIP_PAIRS, device=self.device)

    def heatmaps(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` model input -> ``(B, 17, H/4, W/4)`` heatmaps, flip-tested when asked."""
        extra = {}
        if self.experts > 1:  # ViTPose++: the COCO expert
            extra["dataset_index"] = torch.zeros(len(pixel_values), dtype=torch.long, device=self.device)
        heat = self.model(pixel_values=pixel_values, **extra).heatmaps
        if self.flip_test:
            mirrored = self.model(pixel_values=pixel_values.flip(-1), flip_pairs=self._flip_pairs, **extra).heatmaps
            heat = 0.5 * (heat + mirrored)
        return heat.float()

    def predict(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """``(H, W, 3)`` uint8 RGB photo + ``(P, 4)`` COCO boxes ``(x, y, w, h)`` -> ``(P, 17, 2)``
        COCO-17 keypoints (photo pixels) and ``(P, 17)`` scores."""
        from transformers.models.vitpose.modeling_vitpose import VitPoseEstimatorOutput

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SPGNetError(f"ViTPose keypoints: the image must be (H, W, 3) uint8 RGB, got shape "
                              f"{image.shape} {image.dtype}")
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
        if not (np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()):
            raise SPGNetError(f"ViTPose keypoints: boxes must be finite (x, y, w, h) with w, h > 0, "
                              f"got {boxes.tolist()}")
        box_list = [boxes.tolist()]
        if not image.flags.writeable:  # the processor makes a tensor of it (torch warns on read-only arrays)
            image = image.copy()
        pixels = self.processor(images=[image], boxes=box_list, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            heat = self.heatmaps(pixels.to(self.device))
        found = self.processor.post_process_pose_estimation(VitPoseEstimatorOutput(heatmaps=heat.cpu()),
                                                            boxes=box_list)[0]
        keypoints = np.stack([np.asarray(f["keypoints"], np.float32) for f in found])
        scores = np.stack([np.asarray(f["scores"], np.float32).reshape(-1) for f in found])
        return keypoints, scores

    def refine(self, image: np.ndarray, people) -> None:
        """Replace the ``keypoints`` of every :class:`spgnet.photo.detect.Detection` in ``people``
        (in place) with this model's, one batch for the photo."""
        h, w = size = image.shape[:2]
        regions = []
        for d in people:
            xy, vis = d.landmarks[:, :2], d.landmarks[:, 2]
            seen = (vis >= SEEN_VISIBILITY) & (xy >= 0).all(1) & (xy[:, 0] <= w - 1) & (xy[:, 1] <= h - 1)
            regions.append(person_region(d.mask, xy[seen]))
        chosen = [i for i, r in enumerate(regions) if r is not None]
        if not chosen:
            return
        keypoints, scores = self.predict(image, [regions[i] for i in chosen])
        for i, kp, sc in zip(chosen, keypoints, scores):
            people[i].keypoints = coco17_to_openpose18(kp, sc, size, self.min_score)


def load_keypoint_model(kind: str, weights: str | os.PathLike | None = None,
                        device: str = "cpu") -> VitPoseKeypoints | None:
    """The keypoint model chosen by ``--keypoints KIND``: None for ``"blazepose"`` (mediapipe's
    own keypoints; ``weights`` is ignored), a :class:`VitPoseKeypoints` for ``"vitpose"`` with
    ``weights`` or, when that is None, the folder in ``SPGNET_KEYPOINT_WEIGHTS``."""
    if kind not in KEYPOINT_MODELS:
        raise SPGNetError(f"--keypoints {kind!r}: unknown keypoint model; choose one of {', '.join(KEYPOINT_MODELS)}")
    if kind == "blazepose":
        return None
    weights = weights_or_env(weights, WEIGHTS_ENV, "--keypoints vitpose needs --keypoint-weights DIR (a local "
                             "ViTPose COCO model; nothing is downloaded)")
    return VitPoseKeypoints(weights, device=device)


__all__ = ["KEYPOINT_MODELS", "WEIGHTS_ENV", "MIN_SCORE", "COCO17_NAMES", "OPENPOSE_FROM_COCO", "COCO_FLIP_PAIRS",
           "VitPoseKeypoints", "check_coco_order", "coco17_to_openpose18", "load_keypoint_model", "person_region"]
