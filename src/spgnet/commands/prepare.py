"""``spgnet prepare``: a folder of your own photos -> a dataset in the docs/design.md §4 layout (docs/design.md §11).

Keypoints and a person mask from mediapipe (offline), a coarse parsing from them; see
:mod:`spgnet.photo.prepare` for the geometry, the names and the pairs.
"""

from __future__ import annotations

import argparse

from spgnet.commands.transfer import add_photo_arguments, photo_options, print_notes
from spgnet.photo.prepare import PAIR_MODES, REPORT_NAME, SPLIT_CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR", help="folder of JPEG/PNG photos (not recursive)")
    p.add_argument("--out", required=True, metavar="ROOT", help="dataset folder to write")
    p.add_argument("--size", default="256x176", metavar="HxW",
                   help="output size, height x width (default 256x176): scale to the height, then pad or "
                        "crop the width around the person")
    p.add_argument("--pairs", default="all", choices=PAIR_MODES,
                   help="all: every ordered pair of two images; by-prefix: pairs of images whose names share "
                        "the part before the first '_' (default all)")
    p.add_argument("--split", default="test", choices=SPLIT_CHOICES,
                   help="split to write; 'both' writes the same images as train and test (default test)")
    add_photo_arguments(p)
    p.add_argument("--force", action="store_true", help="write into a split folder that already holds files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from spgnet.utils.parse import parse_size
    from spgnet.photo.learned_keypoints import load_keypoint_model
    from spgnet.photo.learned_parsing import load_parser
    from spgnet.photo.prepare import prepare_photos

    size = parse_size(args.size)
    options = photo_options(args)
    parser = load_parser(options["parser"], options["parser_weights"])  # None: the coarse parsing
    keypoint_model = load_keypoint_model(options["keypoints"], options["keypoint_weights"])  # None: BlazePose's
    r = prepare_photos(args.images, args.out, size=size, pairs=args.pairs, split=args.split,
                       visibility_threshold=options["visibility_threshold"], force=args.force,
                       progress=not args.quiet, person=options["person"], parser=parser,
                       keypoint_model=keypoint_model)
    for path in r.skipped:
        print(f"no person found in {path}")
    print_notes(r.notes)
    print(f"wrote {len(r.names)} image(s) and {len(r.pairs)} pair(s) at {size[0]}x{size[1]} to {r.root} "
          f"(split {', '.join(r.splits)}; {len(r.skipped)} skipped; report in {r.root / REPORT_NAME}) "
          f"in {r.seconds:.1f}s")
    return 0
