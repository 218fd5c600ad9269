"""``spgnet demo``: the README's main job, on embedded synthetic people.

Writes a synthetic dataset in the DESIGN §4 layout (with ground-truth flow), validates
it with the same checker users run on real data, and writes a PNG contact sheet of
test pairs with their parsing and skeletons.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--pairs", type=int, default=200, help="training pairs to synthesise (default: 200)")
    p.add_argument("--test-pairs", type=int, default=24, help="test pairs to synthesise (default: 24)")
    p.add_argument("--size", default="256x176", help="image size HxW (default: 256x176)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sheet-pairs", type=int, default=6, help="pairs shown on the contact sheet")


def run(args: argparse.Namespace) -> int:
    from spgnet.commands.synth import parse_size
    from spgnet.config import DatasetConfig
    from spgnet.data.check import check_dataset
    from spgnet.data.synth import write_synthetic_dataset
    from spgnet.sheet import make_contact_sheet

    out = Path(args.out)
    size = parse_size(args.size)
    data_root = out / "data"
    t0 = time.perf_counter()
    print(f"[1/3] synthesising {args.pairs} train + {args.test_pairs} test pairs at {size[0]}x{size[1]} -> {data_root}")
    write_synthetic_dataset(
        data_root, args.pairs, test_pairs=args.test_pairs, size=size, seed=args.seed, force=True
    )
    print("[2/3] validating the dataset")
    cfg = DatasetConfig(root=str(data_root), image_size=list(size), load_size=list(size), use_flow=True)
    report = check_dataset(cfg)
    print(report.summary())
    if not report.ok:
        print(report.format())
        return 1
    sheet = out / "contact_sheet.png"
    print(f"[3/3] contact sheet of {args.sheet_pairs} test pairs -> {sheet}")
    make_contact_sheet(data_root, "test", args.sheet_pairs, sheet)
    print(f"done in {time.perf_counter() - t0:.1f}s: {sheet}")
    return 0
