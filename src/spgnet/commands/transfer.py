"""``spgnet transfer --checkpoint K --source PHOTO --target-pose (PHOTO|keypoints.json) --out OUT.png``:
the person of one photo in the pose of another photo or of an OpenPose JSON file, both stages
of SPGNet from a checkpoint alone (see :mod:`spgnet.photo.transfer` for the geometry and the JSON frame)."""

from __future__ import annotations

import argparse

from spgnet.photo.animation import IMAGE_OUTPUTS


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``transfer`` and ``animate`` share."""
    p.add_argument("--checkpoint", required=True, metavar="K", help="checkpoint folder (e.g. runs/NAME/checkpoints/last)")
    p.add_argument("--source", required=True, metavar="PHOTO", help="photo of the person (JPEG/PNG)")
    p.add_argument("--pose-size", default=None, metavar="HxW",
                   help="pixel size of the image the JSON keypoints were taken on (default: the model's load "
                        "size, or a sequence file's \"size\"); they are scaled to the model's height and "
                        "padded/cropped in width like a photo")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator's noise (default 0): same seed, same image")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the checkpoint's config (repeatable)")
    add_photo_arguments(p, target=True)


def add_photo_arguments(p: argparse.ArgumentParser, target: bool = False) -> None:
    """The person, parser and keypoint options that ``prepare``, ``transfer`` and ``animate`` share."""
    from spgnet.photo.prepare import DEFAULT_VISIBILITY

    p.add_argument("--person", default="largest", metavar="K|largest|center",
                   help="which person of a photo with several: the largest (default), the one nearest the "
                        "centre, or the K-th from the left (1 = leftmost)")
    if target:
        p.add_argument("--target-person", default="largest", metavar="K|largest|center",
                       help="the same for photos given as target poses (default largest)")
    p.add_argument("--parser", default="coarse", choices=("coarse", "segformer"),
                   help="human parsing of the photo: coarse (from keypoints, mask and colours; default) or "
                        "segformer (a learned parser; needs --parser-weights, see docs/parsers.md)")
    p.add_argument("--parser-weights", default=None, metavar="DIR",
                   help="local folder of a SegFormer human-parsing model (nothing is downloaded; default: "
                        "$SPGNET_PARSER_WEIGHTS)")
    p.add_argument("--keypoints", default="blazepose", choices=("blazepose", "vitpose"),
                   help="keypoints of the people found: blazepose (mediapipe's; default) or vitpose (a learned "
                        "COCO keypoint model; needs --keypoint-weights, see docs/photos.md)")
    p.add_argument("--keypoint-weights", default=None, metavar="DIR",
                   help="local folder of a ViTPose COCO model (nothing is downloaded; default: "
                        "$SPGNET_KEYPOINT_WEIGHTS)")
    p.add_argument("--visibility", type=float, default=DEFAULT_VISIBILITY, metavar="V",
                   help=f"BlazePose visibility a joint needs to be kept, in [0, 1] (default {DEFAULT_VISIBILITY:g}, "
                        "chosen by measurement: docs/photos.md)")


def photo_options(args: argparse.Namespace) -> dict:
    """The :class:`PoseTransfer` keywords of :func:`add_photo_arguments`, checked (one line each)."""
    from spgnet import SPGNetError
    from spgnet.photo.detect import parse_person

    if not 0.0 <= args.visibility <= 1.0:
        raise SPGNetError(f"--visibility {args.visibility}: must lie in [0, 1]")
    options = dict(person=parse_person(args.person), parser=args.parser, parser_weights=args.parser_weights,
                   keypoints=args.keypoints, keypoint_weights=args.keypoint_weights,
                   visibility_threshold=args.visibility)
    if hasattr(args, "target_person"):
        options["target_person"] = parse_person(args.target_person)
    return options


def print_notes(notes: list[str]) -> None:
    """Every "several people" line, as a warning on stderr."""
    import sys

    for note in notes:
        print(f"warning: {note}", file=sys.stderr)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--target-pose", required=True, metavar="PHOTO|JSON",
                   help="photo to take the pose from (detected), or an OpenPose JSON file")
    p.add_argument("--out", required=True, metavar="OUT.png", help=f"output image ({', '.join(IMAGE_OUTPUTS)})")
    p.add_argument("--sheet", action="store_true",
                   help="write source | target pose | predicted parsing | result side by side instead of the result")


def pose_size_arg(text: str | None) -> tuple[int, int] | None:
    from spgnet.utils.parse import parse_size

    return None if text is None else parse_size(text, "--pose-size")


def run(args: argparse.Namespace) -> int:
    from spgnet.photo.animation import check_output_suffix
    from spgnet.photo.transfer import PoseTransfer, save_transfer

    out = check_output_suffix(args.out, IMAGE_OUTPUTS)
    pose_size = pose_size_arg(args.pose_size)
    with PoseTransfer(args.checkpoint, args.device, args.overrides, seed=args.seed, **photo_options(args)) as model:
        result = model.transfer(args.source, args.target_pose, pose_size)
        print_notes(model.notes)
    save_transfer(result, out, sheet=args.sheet)
    h, w = result.image.shape[:2]
    what = "sheet" if args.sheet else "image"
    print(f"wrote {out}: {args.source} in the pose of {args.target_pose} at {h}x{w} ({what})")
    return 0
