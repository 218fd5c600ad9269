"""``spgnet sheet ROOT``: a PNG contact sheet of a dataset's pairs (images, parsing, skeletons)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="ROOT", help="dataset folder (overrides data.root of the config)")
    p.add_argument("--split", default="test", help="split to show (default: test)")
    p.add_argument("--pairs", type=int, default=6, metavar="K", help="pairs (rows) to show (default 6)")
    p.add_argument("--stride", type=int, default=1, metavar="S", help="show every S-th pair (default 1)")
    p.add_argument("--out", default="sheet.png", help="output PNG (default: sheet.png)")
    p.add_argument("--config", help="config YAML whose 'data:' section names the files (default: docs/design.md §4 names)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")


def run(args: argparse.Namespace) -> int:
    from spgnet.config import load_config
    from spgnet.apps.sheet import make_contact_sheet

    cfg = load_config(args.config, args.set)
    sheet = make_contact_sheet(args.root, args.split, args.pairs, args.out, dataset_config=cfg.data, stride=args.stride)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]} px)")
    return 0
