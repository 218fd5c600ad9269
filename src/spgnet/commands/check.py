"""``spgnet check ROOT``: validate a dataset and report every problem at once.

Exit status: 0 clean, 1 problems found, 2 unusable input (missing ROOT, bad config).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spgnet import SPGNetError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="ROOT", help="dataset folder (overrides data.root of the config)")
    p.add_argument("--config", help="config YAML (dataset section under 'data:'); default: built-in defaults")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="config override, e.g. --set data.image_size=[256,176] (repeatable)",
    )
    p.add_argument("--split", action="append", dest="splits", metavar="SPLIT", help="split to check (repeatable; default: train and test)")
    p.add_argument("--max-list", type=int, default=20, metavar="N", help="problems listed per kind (counts stay exact; default 20, -1 = all)")
    p.add_argument("--header-only", action="store_true", help="read image headers only (skip the full decode check)")


def run(args: argparse.Namespace) -> int:
    from spgnet.config import load_config
    from spgnet.data.check import check_dataset

    root = Path(args.root)
    if not root.is_dir():
        raise SPGNetError(f"{root}: dataset folder not found")
    cfg = load_config(args.config, args.set)
    cfg.data.root = str(root)
    t0 = time.perf_counter()
    report = check_dataset(cfg.data, splits=tuple(args.splits or ("train", "test")), decode=not args.header_only)
    if not report.ok:
        print(report.format(max_list=args.max_list))
    print(f"{report.summary()} ({time.perf_counter() - t0:.1f}s)")
    return 0 if report.ok else 1
