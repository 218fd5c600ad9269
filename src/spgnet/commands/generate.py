"""``spgnet generate --checkpoint K --split test --out DIR``: run both stages on every
pair of a split; writes ``<from-stem>___<to-stem>.png`` (the generated image) and
``<from-stem>___<to-stem>_parsing.png`` (the target CIHP labels stage 2 used: stage 1's
prediction, or with ``--target-parsing provided|ground-truth`` the given ones) per pair."""

from __future__ import annotations

import argparse

from spgnet.config import TARGET_PARSINGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. runs/00000-x/checkpoints/best)")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-root", default=None, help="dataset root (default: the one in the checkpoint's config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the checkpoint's config (repeatable)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator's noise (default: 0)")
    p.add_argument("--target-parsing", choices=TARGET_PARSINGS, default="ours",
                   help="target parsing for stage 2: ours (stage 1's prediction, default), provided (the "
                        "dataset's parsing-pred/<from>___<to>.png, e.g. the official stage-1 predictions), "
                        "ground-truth; a checkpoint without stage 1 needs provided or ground-truth")


def run(args: argparse.Namespace) -> int:
    from spgnet.apps.generate import generate_split

    overrides = list(args.overrides) + ([f"data.root={args.data_root}"] if args.data_root else [])
    n = generate_split(args.checkpoint, args.split, args.out, overrides=overrides, batch_size=args.batch_size,
                       workers=args.workers, device=args.device, limit=args.limit,
                       seed=args.seed, target_parsing=args.target_parsing)
    print(f"wrote {n} generated images and parsing maps to {args.out}")
    return 0
