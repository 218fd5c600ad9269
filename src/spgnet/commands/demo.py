"""``spgnet demo``: the README's main job, end to end on embedded synthetic people
(synthesise -> validate -> train both stages -> generate -> report with baselines)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--config", default=None, help="config file or packaged config name (default: synthetic-small)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--pairs", type=int, default=None, help="training pairs to synthesise (default: 400)")
    p.add_argument("--test-pairs", type=int, default=None, help="test pairs to synthesise (default: 40)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from spgnet.apps.demo import run_demo

    run_demo(args.out, args.config, args.overrides, args.pairs, args.test_pairs, args.seed)
    return 0
