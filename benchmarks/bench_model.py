"""Generator benchmarks: our SPGNetGenerator against the straightforward reference
implementation (:mod:`spgnet.models.reference`) with the same weights.

Same options as ``spgnet bench`` (see ``src/spgnet/apps/bench.py``); tables go to stdout and,
with ``--markdown`` / ``--json``, to files. ``--target`` runs the CPU target
check: official-deepfashion preset (18 pose channels) at 256x256, batch 2, fp32, FLOPs
per forward and G forward+backward time of the reference and of each restructuring step
(``--ablation``).

    python benchmarks/bench_model.py --target
    python benchmarks/bench_model.py --settings deepfashion@256x176,market@128x64 --batch 4 --modes fp32,bf16-cl
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from spgnet import SPGNetError
    from spgnet.commands import bench

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_arguments(p)
    p.add_argument("--target", action="store_true",
                   help="CPU target check: official-deepfashion@256x256, batch 2, fp32, GFLOP and G "
                        "forward+backward of the reference and of each restructuring step (--ablation)")
    args = p.parse_args()
    if args.target:
        args.settings, args.batch, args.impl, args.ablation = "official-deepfashion@256x256", "2", "ours,reference", True
    try:
        return bench.run(args)
    except SPGNetError as exc:
        print(f"bench_model: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
