"""Accuracy of the photo pipeline (docs/photos.md): keypoints on real people, parsing on
synthetic people, and pictures of both.

1. **Keypoints**: every photo of ``tests/assets/real-people`` (9 photos, 17 annotated people)
   goes through :meth:`PoseDetector.detect_people`; each annotated person is matched to the
   detected person with the most correct joints, and PCKh@0.5 is counted over the annotated
   joints (MPII: distance <= half the annotated head size; COCO: PATN's head box, |dx| and
   |dy| below half the box of the annotated head joints). A person who is not found counts
   as all joints wrong. Printed per visibility threshold: overall, COCO, MPII, per joint, and
   how many detected joints have no annotation. ``--keypoint-weights DIR``: the keypoints of a
   local ViTPose model (:mod:`spgnet.photo.learned_keypoints`) for the people found instead.
2. **Parsing**: ``spgnet synth`` people (CIHP ground truth) parsed from their true keypoints
   and silhouette, with and without the picture's colours: pixel accuracy and IoU per
   class group.
   ``--pipeline N``: the whole pipeline instead (keypoints, mask and view detected on
   synthetic people rendered at 512x352, every fourth from the back, then the coarse
   parsing with colours), scored over the pixels that either the truth or the result
   calls the person. ``--dresses``: the same pictures again with every skirt made a dress
   of the top's cloth (``sample_identity(dress=True)``).
3. **Front or back**: ``--views N`` synthetic people rendered at 256x176, half seen from
   the back, half from the front, through :meth:`PoseDetector.detect_people`: how many
   of each view were called front, back, or not found, and for how many left and right
   are right (most side-specific joints nearer their own truth than their partner's).
4. **Masks**: ``--masks N`` synthetic people rendered at 512x352 through
   :meth:`PoseDetector.detect_people`: IoU of the person's mask with the exact silhouette,
   as the pipeline makes it (refined by the guided filter) and with
   :func:`spgnet.photo.detect.refine_mask` replaced by the identity (BlazePose's own mask).
5. ``--pictures DIR``: every real photo with the detected skeletons and the coarse parsing
   of each person over it, and the astronaut's.

    python benchmarks/photo_accuracy.py [--thresholds 0,0.1,0.2,0.3,0.5,0.7] [--keypoint-weights DIR] [--synth-people 120] [--pipeline 80] [--pipeline-seed 31] [--half-body 0.6] [--dresses] [--views 100] [--masks 40] [--pictures docs/images/photos]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spgnet.data.synth import write_synthetic_dataset
from spgnet.parsing import CIHP_PALETTE, LABEL_INDEX as L
from spgnet.photo.coarse_parsing import coarse_parsing
from spgnet.photo.detect import PoseDetector
from spgnet.pose import FLIP_INDEX, KEYPOINT_NAMES, draw_skeleton, read_annotation_csv

REAL = Path(__file__).resolve().parents[1] / "tests" / "assets" / "real-people"
HEAD_JOINTS = [0, 1, 14, 15, 16, 17]
GROUPS = {
    "face": [L["face"], L["sunglasses"]], "hair": [L["hair"], L["hat"]],
    "upper-clothes": [L["upper-clothes"], L["coat"], L["jumpsuits"], L["scarf"]], "dress": [L["dress"]],
    "pants": [L["pants"]], "skirt": [L["skirt"]], "arms": [L["left-arm"], L["right-arm"], L["glove"]],
    "legs": [L["left-leg"], L["right-leg"], L["socks"]], "shoes": [L["left-shoe"], L["right-shoe"]],
}


def correct(truth: np.ndarray, got: np.ndarray, head_size: float | None) -> np.ndarray:
    annotated, detected = (truth >= 0).all(1), (got >= 0).all(1)
    if head_size is not None:
        close = np.linalg.norm(truth - got, axis=1) <= 0.5 * head_size
    else:
        head = truth[HEAD_JOINTS][(truth[HEAD_JOINTS] >= 0).all(1)]
        close = (np.abs(truth - got) < 0.5 * (head.max(0) - head.min(0))).all(1)
    return annotated & detected & close


def keypoint_table(threshold: float, keypoint_model=None) -> dict:
    annotations = json.loads((REAL / "keypoints.json").read_text())
    right, total = np.zeros(18), np.zeros(18)
    by_source = {"coco": [0, 0], "mpii": [0, 0]}
    unannotated = predicted = found = persons = 0
    seconds = 0.0
    with PoseDetector(threshold, keypoint_model=keypoint_model) as det:
        for name, entry in annotations.items():
            photo = np.asarray(Image.open(REAL / "images" / name).convert("RGB"))
            t0 = time.perf_counter()
            people = det.detect_people(photo)
            seconds += time.perf_counter() - t0
            for p in entry["persons"]:
                truth = np.array(p["keypoints"], np.float32)
                scored = [(correct(truth, d.keypoints, p["head_size"]), d) for d in people]
                hit, d = max(scored, key=lambda s: s[0].sum()) if scored else (np.zeros(18, bool), None)
                annotated = (truth >= 0).all(1)
                right += hit
                total += annotated
                by_source[entry["source"]][0] += int(hit.sum())
                by_source[entry["source"]][1] += int(annotated.sum())
                persons += 1
                if d is not None and hit.any():
                    found += 1
                    detected = (d.keypoints >= 0).all(1)
                    predicted += int(detected.sum())
                    unannotated += int((detected & ~annotated).sum())
    return {"threshold": threshold, "overall": right.sum() / total.sum(),
            "coco": by_source["coco"][0] / by_source["coco"][1], "mpii": by_source["mpii"][0] / by_source["mpii"][1],
            "per_joint": right / np.maximum(total, 1), "found": found, "persons": persons,
            "unannotated": unannotated, "predicted": predicted, "seconds": seconds}


class GroupScores:
    """Pixel accuracy over a region and IoU per class group, summed over pictures; groups
    that no truth holds are left out of the row (the renderer draws dresses only when asked)."""

    def __init__(self):
        self.inter, self.union, self.present = ({g: 0 for g in GROUPS} for _ in range(3))
        self.right = self.total = 0

    def add(self, truth: np.ndarray, got: np.ndarray, region: np.ndarray) -> None:
        self.right += int((got[region] == truth[region]).sum())
        self.total += int(region.sum())
        for g, ids in GROUPS.items():
            a, b = np.isin(truth, ids), np.isin(got, ids)
            self.inter[g] += int((a & b).sum())
            self.union[g] += int((a | b).sum())
            self.present[g] += int(a.sum())

    def row(self) -> dict[str, float]:
        row = {g: self.inter[g] / self.union[g] for g in GROUPS if self.present[g]}
        row["accuracy"] = self.right / self.total
        return row


def parsing_table(n_people: int) -> dict[str, dict[str, float]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        write_synthetic_dataset(root, n_people, test_pairs=1, seed=7, progress=False)
        annotations = read_annotation_csv(root / "annotation-train.csv")
        rows = {"keypoints + mask": (False, False), "keypoints + mask + colours": (True, False),
                "keypoints + mask + colours + the face's outline (FaceMesh)": (True, True)}
        with PoseDetector() as det:
            for row, (with_image, with_outline) in rows.items():
                scores = GroupScores()
                for name, kp in sorted(annotations.items()):
                    truth = np.asarray(Image.open(root / "parsing" / name))
                    image = np.asarray(Image.open(root / "train" / name).convert("RGB")) if with_image else None
                    face = kp[[0, 14, 15, 16, 17]]
                    nose = kp[:1] if (kp[0] >= 0).all() else None
                    outline = det.face_outline(image, face[(face >= 0).all(1)], inside=nose) if with_outline else None
                    scores.add(truth, coarse_parsing(truth > 0, kp, image, face_outline=outline), truth > 0)
                out[row] = scores.row()
    return out


def pipeline_table(n_people: int, threshold: float, seed: int = 31, keep: float = 1.0,
                   dress: bool = False) -> dict[str, float]:
    """The whole photo pipeline on synthetic people at 512x352 (every fourth seen from the
    back): detected keypoints, detected mask, view and colours, against the CIHP truth, over
    the pixels that either calls the person (a person not found scores 0 there). ``keep`` < 1
    cuts every picture below that fraction of the body's height, from the top of the head
    (0.6: at mid-thigh, a half-body photo). ``dress=True``: the same people, those in a
    skirt wearing a dress of their top's cloth instead."""
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    scores, missed = GroupScores(), 0
    with PoseDetector(threshold) as det:
        for i in range(n_people):
            rng = np.random.default_rng([seed, i])
            identity = sample_identity(rng, dress=dress)
            person = render_person(identity, sample_pose(rng, view="back" if i % 4 == 3 else "front"), (512, 352))
            truth, image = person["parsing"], person["image"]
            if keep < 1.0:
                rows = np.nonzero((truth > 0).any(1))[0]
                cut = int(rows[0] + keep * (rows[-1] - rows[0]))
                truth, image = truth[:cut], np.ascontiguousarray(image[:cut])
            people = det.detect_people(image)
            if people:
                d = max(people, key=lambda d: (d.mask & (truth > 0)).sum())
                got = coarse_parsing(d.mask, d.keypoints, image, facing=d.facing, face_outline=d.face_outline)
            else:
                missed += 1
                got = np.zeros_like(truth)
            scores.add(truth, got, (truth > 0) | (got > 0))
    return {**scores.row(), "not found": missed}


def facing_table(n_people: int, threshold: float) -> dict[str, dict[str, int]]:
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    partner = np.array(FLIP_INDEX)
    counts = {view: {"front": 0, "back": 0, "not found": 0, "sides right": 0} for view in ("front", "back")}
    with PoseDetector(threshold) as det:
        for i in range(n_people):
            rng = np.random.default_rng([11, i])
            view = "back" if i % 2 else "front"
            person = render_person(sample_identity(rng), sample_pose(rng, view=view), (256, 176))
            people = det.detect_people(person["image"])
            counts[view][people[0].facing if people else "not found"] += 1
            if people:  # left and right: most side-specific joints nearer their own truth than their partner's
                gt, kp = person["keypoints"], people[0].keypoints
                sided = (gt >= 0).all(1) & (kp >= 0).all(1) & (gt[partner] >= 0).all(1) & (partner != np.arange(18))
                own, mirrored = np.linalg.norm(kp - gt, axis=1), np.linalg.norm(kp - gt[partner], axis=1)
                counts[view]["sides right"] += int((own[sided] < mirrored[sided]).mean() > 0.5) if sided.any() else 0
    return counts


def mask_table(n_people: int, threshold: float) -> dict[str, list[float]]:
    import spgnet.photo.detect as detect_module
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    out = {}
    refine = detect_module.refine_mask
    for name, fn in (("BlazePose's mask", lambda image, probability: probability), ("refined (the pipeline)", refine)):
        detect_module.refine_mask = fn
        ious = []
        try:
            with PoseDetector(threshold) as det:
                for i in range(n_people):
                    rng = np.random.default_rng([21, i])
                    person = render_person(sample_identity(rng), sample_pose(rng), (512, 352))
                    truth = person["parsing"] > 0
                    people = det.detect_people(person["image"])
                    mask = max(people, key=lambda d: (d.mask & truth).sum()).mask if people else np.zeros_like(truth)
                    ious.append(float((mask & truth).sum() / (mask | truth).sum()))
        finally:
            detect_module.refine_mask = refine
        out[name] = ious
    return out


def pictures(folder: Path, threshold: float) -> None:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    photos = {name: np.asarray(Image.open(REAL / "images" / name).convert("RGB"))
              for name in sorted(p.name for p in (REAL / "images").iterdir())}
    photos["astronaut.png"] = data.astronaut()
    with PoseDetector(threshold) as det:
        for name, photo in photos.items():
            people = det.detect_people(photo)
            labels = np.zeros(photo.shape[:2], np.uint8)
            for d in people:
                part = coarse_parsing(d.mask, d.keypoints, photo, facing=d.facing, face_outline=d.face_outline)
                labels = np.where(part > 0, part, labels)
            over = photo.copy()
            person = labels > 0
            over[person] = (0.45 * photo[person] + 0.55 * CIHP_PALETTE[labels[person]]).astype(np.uint8)
            for d in people:
                over = draw_skeleton(over, d.keypoints)
            sheet = np.concatenate([photo, over], 1)
            scale = min(1.0, 900 / sheet.shape[1])
            im = Image.fromarray(sheet)
            if scale < 1:
                im = im.resize((round(sheet.shape[1] * scale), round(sheet.shape[0] * scale)), Image.Resampling.LANCZOS)
            im.save(folder / f"{Path(name).stem}.jpg", quality=85)
            print(f"{folder / (Path(name).stem + '.jpg')}: {len(people)} people, facing {[d.facing for d in people]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--thresholds", default="0,0.1,0.2,0.3,0.5,0.7")
    p.add_argument("--keypoint-weights", default=None, metavar="DIR",
                   help="score the keypoints of a local ViTPose COCO model instead of BlazePose's (the table "
                        "then runs once: the threshold no longer applies to them)")
    p.add_argument("--synth-people", type=int, default=120, help="synthetic pictures for the parsing scores")
    p.add_argument("--pipeline", type=int, default=80, help="synthetic pictures for the whole pipeline's parsing")
    p.add_argument("--pipeline-seed", type=int, default=31, help="their seed (31: the set the rules were developed on)")
    p.add_argument("--half-body", type=float, default=0.6, metavar="KEEP",
                   help="the pipeline's pictures again, cut below this fraction of the body's height (0: not)")
    p.add_argument("--dresses", action=argparse.BooleanOptionalAction, default=True,
                   help="the pipeline's pictures again, those in a skirt wearing a dress")
    p.add_argument("--views", type=int, default=100, help="synthetic pictures for the front/back decision")
    p.add_argument("--masks", type=int, default=40, help="synthetic pictures for the mask scores")
    p.add_argument("--pictures", default=None, metavar="DIR", help="also write the pictures here")
    p.add_argument("--picture-threshold", type=float, default=0.1)
    args = p.parse_args()

    print("| visibility | PCKh@0.5 all | COCO | MPII | people found | detected joints without annotation | s / photo |")
    print("|---|---|---|---|---|---|---|")
    keypoint_model = None
    if args.keypoint_weights:
        from spgnet.photo.learned_keypoints import VitPoseKeypoints

        keypoint_model = VitPoseKeypoints(args.keypoint_weights)
        args.thresholds = args.thresholds.split(",")[0]  # the visibility applies to BlazePose's keypoints only
    rows = [keypoint_table(float(t), keypoint_model) for t in args.thresholds.split(",")]
    for r in rows:
        print(f"| {r['threshold']:g} | {r['overall']:.3f} | {r['coco']:.3f} | {r['mpii']:.3f} | {r['found']}/{r['persons']} "
              f"| {r['unannotated']}/{r['predicted']} | {r['seconds'] / 9:.2f} |")
    print("\nper joint (PCKh@0.5):\n")
    print("| visibility | " + " | ".join(KEYPOINT_NAMES) + " |")
    print("|---|" + "---|" * len(KEYPOINT_NAMES))
    for r in rows:
        print(f"| {r['threshold']:g} | " + " | ".join(f"{v:.2f}" for v in r["per_joint"]) + " |")

    print(f"\nparsing of {args.synth_people} synthetic pictures (true keypoints and silhouette), IoU per class group:\n")
    table = parsing_table(args.synth_people)
    groups = list(next(iter(table.values())))
    print("| input | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[g]:.2f}" for g in groups) + " |")
    runs = [(1.0, False, f"the whole pipeline on {args.pipeline} synthetic pictures at 512x352 (detected keypoints, mask, view)")]
    if args.half_body:
        runs.append((args.half_body, False,
                     f"the same pictures cut below {args.half_body:g} of the body's height (half-body photos)"))
    if args.dresses:
        runs.append((1.0, True, "the same pictures, those in a skirt wearing a dress of their top's cloth"))
    for keep, dress, title in runs:
        print(f"\n{title}:\n")
        row = pipeline_table(args.pipeline, args.picture_threshold, args.pipeline_seed, keep=keep, dress=dress)
        groups = [g for g in row if g not in ("accuracy", "not found")]
        print("| accuracy | " + " | ".join(groups) + " | not found |")
        print("|---|" + "---|" * (len(groups) + 1))
        print(f"| {row['accuracy']:.3f} | " + " | ".join(f"{row[g]:.2f}" for g in groups) + f" | {row['not found']} |")
    print(f"\nfront or back, {args.views} synthetic people (detected):\n")
    print("| view | called front | called back | no person found | left and right right |")
    print("|---|---|---|---|---|")
    for view, c in facing_table(args.views, args.picture_threshold).items():
        print(f"| {view} | {c['front']} | {c['back']} | {c['not found']} | {c['sides right']} |")
    print(f"\nperson masks, {args.masks} synthetic people at 512x352 (detected), IoU with the silhouette:\n")
    print("| mask | mean | median | 10th percentile |")
    print("|---|---|---|---|")
    for name, ious in mask_table(args.masks, args.picture_threshold).items():
        print(f"| {name} | {np.mean(ious):.3f} | {np.median(ious):.3f} | {np.percentile(ious, 10):.3f} |")
    if args.pictures:
        pictures(Path(args.pictures), args.picture_threshold)


if __name__ == "__main__":
    main()
