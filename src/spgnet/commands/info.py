"""``spgnet info --config C``: trainable parameters per module and GFLOPs per forward."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--size", default=None, help="HxW to count FLOPs at (default: data.load_size)")


def run(args: argparse.Namespace) -> int:
    from spgnet.utils.parse import parse_size
    from spgnet.config import load_config
    from spgnet.apps.info import format_table, model_table

    cfg = load_config(args.config, args.overrides)
    size = parse_size(args.size) if args.size else tuple(cfg.data.load_size)
    print(f"config: {args.config} (model variant {cfg.model.generator.variant}, "
          f"{cfg.data.pose.channels} pose channels)")
    print(format_table(model_table(cfg, size), size))
    return 0
