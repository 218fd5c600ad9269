"""``spgnet import-official SRC --out ROOT``: convert the official SPGNet release layout
(``label/split.json``, ``label/pose_label.pkl``, ``seg/``, ``img/``) to ours (docs/design.md §4).

``pose_label.pkl`` is a pickle: it is read with a restricted unpickler (numpy arrays and
builtin containers only), but only point this at files you trust.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="official data folder (e.g. datasets/deepfashion)")
    p.add_argument("--out", required=True, metavar="ROOT", help="output dataset folder (our layout)")
    p.add_argument("--size", metavar="HxW", help="resize images, parsing and keypoints to HxW (default: keep)")
    p.add_argument("--link", action="store_true", help="symlink images instead of copying (only without --size)")
    p.add_argument("--force", action="store_true", help="overwrite a dataset already in ROOT")
    p.add_argument("--workers", type=int, default=4, help="threads for image conversion (default 4)")


def run(args: argparse.Namespace) -> int:
    from spgnet import SPGNetError
    from spgnet.utils.parse import parse_size
    from spgnet.data.official import import_official

    size = parse_size(args.size) if args.size else None
    if args.link and size is not None:
        raise SPGNetError("--link: cannot link images that --size resizes")
    t0 = time.perf_counter()
    result = import_official(args.src, args.out, size=size, link=args.link, force=args.force, workers=args.workers)
    print(result.summary())
    print(f"done in {time.perf_counter() - t0:.1f}s; validate with: spgnet check {args.out}")
    return 0
