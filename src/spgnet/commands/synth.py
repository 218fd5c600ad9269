"""``spgnet synth``: write a synthetic people dataset (docs/design.md §5) in the docs/design.md §4 layout."""

from __future__ import annotations

import argparse

from spgnet import SPGNetError
from spgnet.utils.parse import parse_size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--pairs", type=int, required=True, metavar="N", help="training pairs")
    p.add_argument("--test-pairs", type=int, default=None, metavar="M",
                   help="test pairs (default: a tenth of --pairs, at least 1)")
    p.add_argument("--size", default="256x176", metavar="HxW", help="image size, height x width (default 256x176)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes (default 0)")
    p.add_argument("--poses-per-identity", type=int, default=3, metavar="P",
                   help="pictures per person; each person gives P pairs (default 3)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="processes (default 1; output is identical)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder that is not a synth output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from spgnet.data.synth import write_synthetic_dataset

    size = parse_size(args.size)
    if args.pairs < 1:
        raise SPGNetError(f"--pairs {args.pairs}: need at least 1")
    if args.test_pairs is not None and args.test_pairs < 0:
        raise SPGNetError(f"--test-pairs {args.test_pairs}: must not be negative")
    if args.workers < 1:
        raise SPGNetError(f"--workers {args.workers}: need at least 1")
    if args.poses_per_identity < 2:
        raise SPGNetError(f"--poses-per-identity {args.poses_per_identity}: need at least 2")
    if args.seed < 0:
        raise SPGNetError(f"--seed {args.seed}: must not be negative")
    s = write_synthetic_dataset(args.out, args.pairs, test_pairs=args.test_pairs, size=size, seed=args.seed,
                                poses_per_identity=args.poses_per_identity, workers=args.workers,
                                progress=not args.quiet, force=args.force)
    print(f"wrote {s['train']['pairs']} train pairs ({s['train']['identities']} people, {s['train']['images']} images) "
          f"and {s['test']['pairs']} test pairs ({s['test']['identities']} people) at {size[0]}x{size[1]} "
          f"to {s['root']} in {s['seconds']:.1f}s ({s['pairs_per_second']:.0f} pairs/s)")
    return 0
