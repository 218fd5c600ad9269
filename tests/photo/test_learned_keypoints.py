"""The learned ViTPose keypoints on tiny randomly initialised ViTPose models saved to tmp folders
(no real weights, nothing downloaded): the COCO-17 -> OpenPose-18 table against one written by
name, the photo-pixel geometry against a bright dot (a stand-in network whose heatmaps are the
crop's brightness), mirror symmetry of the flip test, the wiring into the person search and
`spgnet prepare`, and the one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from spgnet.photo.learned_keypoints import (KEYPOINT_MODELS, VitPoseKeypoints, check_coco_order, coco17_to_openpose18,
                                            load_keypoint_model, person_region)
from spgnet.pose import KEYPOINT_NAMES

from helpers import one_line_error

transformers = pytest.importorskip("transformers")  # the `parser` extra (in `dev`)

COCO = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
        "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle"]


@pytest.fixture(autouse=True)
def offline(hf_offline, one_thread):
    """Hub offline, no weights from the environment, no network (conftest.hf_offline)."""


def save_model(folder, *, names=None, experts: int = 1, processor: bool = True, seed: int = 0,
               num_labels: int = 17):
    """A one-layer ViTPose (64x48 input, 16 channels) saved to ``folder``."""
    torch.manual_seed(seed)
    backbone = transformers.VitPoseBackboneConfig(
        image_size=[64, 48], patch_size=[16, 16], hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        mlp_ratio=2, num_experts=experts, part_features=8, out_indices=[1])
    extra = {} if names is None else {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
    config = transformers.VitPoseConfig(backbone_config=backbone, num_labels=num_labels, **extra)
    transformers.VitPoseForPoseEstimation(config).eval().save_pretrained(folder)
    if processor:
        transformers.VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("vitpose") / "tiny")


# -- the table ---------------------------------------------------------------------------------


def test_coco_to_openpose_by_name():
    """Every OpenPose joint but the neck takes the COCO keypoint of the same name; the neck is the
    shoulders' midpoint, present only with both."""
    spelled = {"r": "right", "l": "left"}
    coco = np.arange(17, dtype=np.float32)[:, None] * np.array([[1.0, 2.0]], np.float32) + 1  # keypoint k at (k+1, 2k+1)
    out = coco17_to_openpose18(coco, np.ones(17), (100, 100))
    for j, name in enumerate(KEYPOINT_NAMES):
        if name == "neck":
            np.testing.assert_allclose(out[j], 0.5 * (coco[COCO.index("left_shoulder")] + coco[COCO.index("right_shoulder")]))
            continue
        side, _, part = name.partition("-")
        k = COCO.index(f"{spelled[side]}_{part}" if part else name)
        np.testing.assert_array_equal(out[j], coco[k], err_msg=name)
    scores = np.ones(17)
    scores[COCO.index("left_shoulder")] = 0.1
    out = coco17_to_openpose18(coco, scores, (100, 100))
    assert (out[KEYPOINT_NAMES.index("neck")] == -1).all() and (out[KEYPOINT_NAMES.index("l-shoulder")] == -1).all()
    assert (out[KEYPOINT_NAMES.index("r-shoulder")] >= 0).all()


def test_joints_below_the_score_or_off_the_photo_are_missing():
    coco = np.full((17, 2), 10.0, np.float32)
    coco[0] = (-0.7, 10)  # off the left edge
    coco[1] = (19.4, 5)  # within half a pixel of the right edge (width 20): clamped onto it
    scores = np.full(17, 0.9)
    scores[2] = 0.29
    out = coco17_to_openpose18(coco, scores, (30, 20), min_score=0.3)
    assert (out[KEYPOINT_NAMES.index("nose")] == -1).all()
    np.testing.assert_allclose(out[KEYPOINT_NAMES.index("l-eye")], (19, 5))
    assert (out[KEYPOINT_NAMES.index("r-eye")] == -1).all()


def test_person_region_is_the_box_of_mask_and_points():
    mask = np.zeros((50, 40), bool)
    mask[10:21, 5:16] = True  # pixels 5..15 x 10..20
    assert person_region(mask, np.zeros((0, 2))) == (4.5, 9.5, 11.0, 11.0)
    assert person_region(mask, np.array([[30.0, 2.0]])) == (4.5, 1.5, 26.0, 19.0)
    assert person_region(np.zeros((5, 5), bool), np.zeros((0, 2))) is None


def test_keypoint_order_is_checked_by_name():
    check_coco_order({i: f"LABEL_{i}" for i in range(17)}, "m")  # generic: taken as COCO
    check_coco_order(dict(enumerate(["Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow",
                                     "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle",
                                     "R_Ankle"])), "m")
    swapped = list(COCO)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    one_line_error(lambda: check_coco_order(dict(enumerate(swapped)), "weights W"), "weights W", "COCO-17 order",
                   "'right_eye'")


# -- the geometry ------------------------------------------------------------------------------


class BrightnessHeatmaps(torch.nn.Module):
    """Stands in for the network: every keypoint's heatmap is the crop's brightness, pooled to a
    quarter of the input and smoothed, so its peak lies where the photo's bright dot is."""

    def forward(self, pixel_values, flip_pairs=None, **kwargs):
        from transformers.models.vitpose.modeling_vitpose import VitPoseEstimatorOutput, flip_back

        bright = torch.nn.functional.avg_pool2d(pixel_values.mean(1, keepdim=True), 4)
        g = torch.exp(-0.5 * (torch.arange(-3, 4, dtype=torch.float32) / 1.5) ** 2)
        kernel = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
        heat = torch.nn.functional.conv2d(bright - bright.amin((2, 3), keepdim=True), kernel, padding=3)
        heat = heat.repeat(1, 17, 1, 1)
        return VitPoseEstimatorOutput(heatmaps=flip_back(heat, flip_pairs) if flip_pairs is not None else heat)


@pytest.mark.parametrize("flip_test", [False, True])
def test_keypoints_land_on_the_bright_dot_in_photo_pixels(tiny, flip_test):
    """Two people (boxes) each with a bright dot: every keypoint comes back on its own box's dot
    (photo pixels, pixel centres at integers), whatever the box's shape and position."""
    model = VitPoseKeypoints(tiny, flip_test=flip_test)
    model.model = BrightnessHeatmaps()
    dots = [(83.3, 121.0), (301.0, 64.6)]
    yy, xx = np.mgrid[:300, :400]
    blobs = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 10.0**2)) for x, y in dots)  # sigma 10 px
    photo = np.repeat((255 * blobs).round().astype(np.uint8)[..., None], 3, axis=2)
    boxes = [(40, 60, 90, 200), (250, 20, 120, 110)]
    keypoints, scores = model.predict(photo, boxes)
    assert keypoints.shape == (2, 17, 2) and scores.shape == (2, 17)
    for k, (x, y) in enumerate(dots):
        # photo pixels per pixel of the crop (box grown to 64x48's aspect, by 1.25); the heatmap has
        # a quarter of the crop's resolution: within a quarter of a heatmap pixel
        crop_px = max(boxes[k][2] / 48, boxes[k][3] / 64) * 1.25
        assert np.abs(keypoints[k] - (x, y)).max() < crop_px, (k, keypoints[k][0], (x, y), crop_px)


def test_flip_test_is_mirror_symmetric(tiny):
    """With the flip test, the mirrored photo (and mirrored box) gives exactly the mirrored heatmaps
    with left and right exchanged, for any network (here random weights); without it, not. (The
    keypoints decoded from them are compared on real heatmap shapes in the bright-dot test: DARK's
    sub-pixel step, not mirror-symmetric itself, jumps about on a random network's heatmaps.)"""
    from skimage import data
    from transformers.models.vitpose.modeling_vitpose import flip_back

    photo = data.astronaut()[::2, ::2]
    w = photo.shape[1]
    box = np.array([40.0, 10.0, 150.0, 230.0])
    mirrored_box = box.copy()
    mirrored_box[0] = w - 1 - box[0] - box[2]  # edges e -> (w - 1) - e
    mirrored_photo = np.ascontiguousarray(photo[:, ::-1])
    partner = [COCO.index(n.replace("left", "@").replace("right", "left").replace("@", "right")) for n in COCO]
    pairs = torch.tensor([(k, partner[k]) for k in range(17) if partner[k] > k])
    for flip_test in (True, False):
        model = VitPoseKeypoints(tiny, flip_test=flip_test)
        crop = model.processor(images=[photo], boxes=[[box.tolist()]], return_tensors="pt")["pixel_values"]
        mirrored_crop = model.processor(images=[mirrored_photo], boxes=[[mirrored_box.tolist()]],
                                        return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            heat, mirrored_heat = model.heatmaps(crop), model.heatmaps(mirrored_crop)
        gap = (mirrored_heat - flip_back(heat, pairs)).abs().max().item()
        assert gap < 1e-5 if flip_test else gap > 1e-3


def test_vitpose_plus_runs_with_the_coco_expert(tmp_path):
    model = VitPoseKeypoints(save_model(tmp_path / "plus", experts=2))
    assert model.experts == 2
    kp, sc = model.predict(np.full((80, 60, 3), 90, np.uint8), [(5, 5, 40, 60)])
    assert kp.shape == (1, 17, 2) and np.isfinite(kp).all()


# -- wiring ------------------------------------------------------------------------------------


def test_the_person_search_takes_the_keypoints_from_the_model(tiny):
    """PoseDetector(keypoint_model=...) gives every person the model's keypoints for the box of its
    mask and seen landmarks; masks, views and the people found stay mediapipe's."""
    from skimage import data

    from spgnet.photo.detect import PoseDetector

    photo = data.astronaut()
    model = VitPoseKeypoints(tiny)
    with PoseDetector(0.1) as plain, PoseDetector(0.1, keypoint_model=model) as learned:
        before, after = plain.detect_people(photo), learned.detect_people(photo)
    assert len(before) == len(after) == 1
    a, b = before[0], after[0]
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.facing == b.facing
    lm = a.landmarks
    seen = (lm[:, 2] >= 0.5) & (lm[:, :2] >= 0).all(1) & (lm[:, 0] <= 511) & (lm[:, 1] <= 511)
    ys, xs = np.nonzero(a.mask)
    xs = np.concatenate([xs, lm[seen, 0]])
    ys = np.concatenate([ys, lm[seen, 1]])
    box = (xs.min() - 0.5, ys.min() - 0.5, xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    kp, sc = model.predict(photo, [box])
    np.testing.assert_allclose(b.keypoints, coco17_to_openpose18(kp[0], sc[0], photo.shape[:2]), atol=1e-4)
    assert not np.allclose(a.keypoints, b.keypoints)


def test_prepare_with_learned_keypoints(tmp_path, tiny, capsys):
    """--keypoints vitpose writes the model's keypoints (the neck always the shoulders' midpoint
    when both are kept) and keeps the person mask; without weights, one line and exit 2."""
    from PIL import Image
    from skimage import data

    from spgnet.cli import main
    from spgnet.pose import read_annotation_csv

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astro.png")
    args = ["prepare", "--images", str(photos), "--size", "128x88", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "learned"), "--keypoints", "vitpose", "--keypoint-weights",
                 str(tiny)]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain" / "parsing" / "astro.png"))
    learned = np.asarray(Image.open(tmp_path / "learned" / "parsing" / "astro.png"))
    np.testing.assert_array_equal(plain > 0, learned > 0)  # the same person mask
    assert f"keypoints: VitPoseKeypoints from {tiny}" in (tmp_path / "learned" / "prepare_report.txt").read_text()
    kp_plain = read_annotation_csv(tmp_path / "plain" / "annotation-test.csv")["astro.png"]
    kp_learned = read_annotation_csv(tmp_path / "learned" / "annotation-test.csv")["astro.png"]
    assert not np.allclose(kp_plain, kp_learned)
    present = (kp_learned >= 0).all(1)
    if present[2] and present[5]:
        np.testing.assert_allclose(kp_learned[1], 0.5 * (kp_learned[2] + kp_learned[5]), atol=1)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "none"), "--keypoints", "vitpose"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--keypoint-weights" in err


def test_transfer_with_learned_keypoints(tmp_path, tiny, tiny_run):
    """PoseTransfer(keypoints="vitpose") (what `spgnet transfer/animate/serve --keypoints vitpose`
    build) takes the source's and the target photo's keypoints from the model."""
    from PIL import Image
    from skimage import data

    from spgnet.photo.transfer import PoseTransfer

    photo = tmp_path / "astro.png"
    Image.fromarray(data.astronaut()).save(photo)
    with PoseTransfer(tiny_run["ckpt"], "cpu") as plain:
        before = plain.transfer(photo, photo)
    with PoseTransfer(tiny_run["ckpt"], "cpu", keypoints="vitpose", keypoint_weights=tiny) as learned:
        assert learned.detector.keypoint_model is learned.keypoint_model
        after = learned.transfer(photo, photo)
    assert not np.allclose(before.target, after.target)
    assert not np.allclose(before.source.keypoints, after.source.keypoints)
    np.testing.assert_array_equal(before.source.parsing > 0, after.source.parsing > 0)  # the same person mask


# -- errors ------------------------------------------------------------------------------------


def test_errors_for_bad_folders(tmp_path, tiny):
    one_line_error(lambda: VitPoseKeypoints(tmp_path / "nowhere"), str(tmp_path / "nowhere"), "no such folder")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tiny / "config.json").read_text())
    one_line_error(lambda: VitPoseKeypoints(no_weights), str(no_weights), "model.safetensors")
    (no_weights / "pytorch_model.bin").write_bytes(b"")
    one_line_error(lambda: VitPoseKeypoints(no_weights), "pytorch_model.bin", "not unpickled")
    other = tmp_path / "segformer"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "segformer"}))
    one_line_error(lambda: VitPoseKeypoints(other), str(other), "not a ViTPose", "'segformer'")
    one_line_error(lambda: VitPoseKeypoints(save_model(tmp_path / "mpii", num_labels=16)), "16 keypoints", "COCO-17")


def test_error_for_a_processor_that_does_not_fit_the_model(tmp_path):
    folder = save_model(tmp_path / "odd", processor=False)
    transformers.VitPoseImageProcessor(size={"height": 256, "width": 192}).save_pretrained(folder)
    one_line_error(lambda: VitPoseKeypoints(folder), str(folder), "256x192", "64x48")


def test_without_processor_config_the_defaults_are_used(tmp_path):
    folder = save_model(tmp_path / "bare", processor=False)
    one_line_error(lambda: VitPoseKeypoints(folder), "256x192", "64x48")  # the processor's default size


def test_errors_for_bad_inputs(tiny):
    model = VitPoseKeypoints(tiny)
    one_line_error(lambda: model.predict(np.zeros((10, 10, 3), np.float32), [(0, 0, 5, 5)]), "uint8")
    one_line_error(lambda: model.predict(np.zeros((10, 10, 3), np.uint8), [(0, 0, 0, 5)]), "w, h > 0")
    kp, sc = model.predict(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)))
    assert kp.shape == (0, 17, 2) and sc.shape == (0, 17)


def test_load_keypoint_model_kinds(monkeypatch, tiny):
    assert KEYPOINT_MODELS == ("blazepose", "vitpose")
    assert load_keypoint_model("blazepose") is None
    one_line_error(lambda: load_keypoint_model("vitpose"), "--keypoints vitpose needs --keypoint-weights DIR",
                   "nothing is downloaded")
    one_line_error(lambda: load_keypoint_model("openpose"), "'openpose'", "blazepose", "vitpose")
    monkeypatch.setenv("SPGNET_KEYPOINT_WEIGHTS", str(tiny))
    assert load_keypoint_model("vitpose").weights == tiny


def test_missing_transformers_is_one_line(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    one_line_error(lambda: VitPoseKeypoints(tiny), "pip install 'spgnet[parser]'")


def test_half_precision_weights_run_in_float32(tmp_path):
    """A checkpoint stored in float16 (newer transformers load it as float16) meets float32 input."""
    folder = save_model(tmp_path / "half")
    transformers.VitPoseForPoseEstimation.from_pretrained(folder).half().save_pretrained(folder)
    model = VitPoseKeypoints(folder)
    assert next(model.model.parameters()).dtype == torch.float32
    kp, sc = model.predict(np.full((80, 60, 3), 90, np.uint8), [(5, 5, 40, 60)])
    assert np.isfinite(kp).all() and np.isfinite(sc).all()
