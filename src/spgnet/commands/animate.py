"""``spgnet animate --checkpoint K --source PHOTO --poses (DIR|sequence.json) --out OUT.gif``:
the person of one photo through a pose sequence, as a GIF (or MP4 with imageio-ffmpeg) and
optionally a strip of the frames side by side. Sequence formats: :mod:`spgnet.photo.transfer`."""

from __future__ import annotations

import argparse

from spgnet.commands.transfer import add_common_arguments, photo_options, pose_size_arg, print_notes
from spgnet.photo.animation import ANIMATION_OUTPUTS, IMAGE_OUTPUTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common_arguments(p)
    p.add_argument("--poses", required=True, metavar="DIR|JSON",
                   help="folder of OpenPose JSON files and/or photos (in file name order), or one JSON file "
                        "with a list of poses")
    p.add_argument("--out", required=True, metavar="OUT.gif", help=f"animation ({', '.join(ANIMATION_OUTPUTS)})")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")
    p.add_argument("--strip", default=None, metavar="OUT.png", help="also write the frames side by side")
    p.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")


def run(args: argparse.Namespace) -> int:
    from spgnet.utils.io import save_image
    from spgnet.photo.animation import check_animation_output, check_output_suffix, frame_strip, write_animation
    from spgnet.photo.transfer import PoseTransfer

    out = check_animation_output(args.out, args.fps)
    strip = check_output_suffix(args.strip, IMAGE_OUTPUTS, "--strip") if args.strip else None
    pose_size = pose_size_arg(args.pose_size)
    with PoseTransfer(args.checkpoint, args.device, args.overrides, seed=args.seed,
                      batch_size=args.batch_size, **photo_options(args)) as model:
        result = model.animate(args.source, args.poses, pose_size)
        print_notes(model.notes)
    write_animation(result.frames, out, args.fps)
    if strip is not None:
        save_image(frame_strip(result.frames), strip)
    n, h, w = result.frames.shape[:3]
    print(f"wrote {out}: {n} frame(s) at {h}x{w}, {args.fps:g} fps" + (f"; strip {strip}" if strip else ""))
    return 0
