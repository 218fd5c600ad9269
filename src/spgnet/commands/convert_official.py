"""``spgnet convert-official --generator PTH [--flow-dir DIR] --dataset deepfashion|market --out CKPT
[--data-root ROOT]``: the official SPGNet release's weights -> one of our checkpoints;
``spgnet convert-official --to-official DIR --checkpoint CKPT``: the reverse (docs/official.md §3).

Official ``.pth`` files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", metavar="PTH",
                   help="official generator weights (checkpoints/<id>/latest_net_netG.pth)")
    p.add_argument("--flow-dir", metavar="DIR",
                   help="official flow network folder (checkpoints/FlowReg_<dataset>: best_net_netF.pth, "
                        "train_opt.json); without it the checkpoint uses train.flow=part-affine")
    p.add_argument("--dataset", choices=("deepfashion", "market"), help="which official generator PTH is")
    p.add_argument("--out", metavar="CKPT", help="checkpoint folder to write")
    p.add_argument("--data-root", metavar="ROOT",
                   help="dataset the checkpoint's config points at (default: data/official-<dataset>, "
                        "where `spgnet import-official --out` puts it)")
    p.add_argument("--to-official", metavar="DIR",
                   help="the reverse: write the official files of --checkpoint into DIR")
    p.add_argument("--checkpoint", metavar="CKPT", help="with --to-official: our checkpoint (an official-* generator)")


def _refuse(args: argparse.Namespace, names: tuple[str, ...], mode: str) -> None:
    from spgnet import SPGNetError

    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]
    if given:
        raise SPGNetError(f"{', '.join(given)}: not used {mode}")


def run(args: argparse.Namespace) -> int:
    from spgnet import SPGNetError

    t0 = time.perf_counter()
    if args.to_official is not None:
        from spgnet.apps.convert_official import export_official

        if args.checkpoint is None:
            raise SPGNetError("--to-official needs --checkpoint CKPT (the checkpoint to export)")
        _refuse(args, ("generator", "flow_dir", "dataset", "out", "data_root"), "with --to-official")
        written = export_official(args.checkpoint, args.to_official)
        for what, path in written.items():
            print(f"{what}: {path}")
        print(f"exported {args.checkpoint} to {args.to_official} in {time.perf_counter() - t0:.1f}s")
        return 0

    from spgnet.apps.convert_official import convert_official

    _refuse(args, ("checkpoint",), "without --to-official")
    missing = [f"--{n.replace('_', '-')}" for n in ("generator", "dataset", "out") if getattr(args, n) is None]
    if missing:
        raise SPGNetError(f"missing {', '.join(missing)} (or use --to-official DIR --checkpoint CKPT)")
    out = convert_official(args.generator, args.dataset, args.out, flow_dir=args.flow_dir, data_root=args.data_root)
    flow = ("the official flow network (train.flow=official)" if args.flow_dir
            else "no flow network (train.flow=part-affine)")
    print(f"converted the official {args.dataset} generator {args.generator} with {flow} -> {out} "
          f"in {time.perf_counter() - t0:.1f}s")
    print(f"generate with: spgnet generate --checkpoint {out} --split test --target-parsing provided "
          f"--out results/official-{args.dataset}")
    return 0
