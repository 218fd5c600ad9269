"""Part-affine flow: milliseconds per batch, and its accuracy against synthetic ground truth.

Writes a synthetic set (docs/design.md §5, with GT flow + visibility) to a temporary folder
unless --root is given, loads it through PairDataset, then reports

* ms per ``part_affine_flow`` call on a batch (default 8 pairs at 256x176; median of
  --repeat calls after one warm-up);
* mean end-point error on GT-visible body pixels, against the zero-flow error;
* visibility accuracy (visible / not visible) on target foreground pixels.

    python benchmarks/bench_flow.py [--root DATA] [--size 256x176] [--pairs 32] [--batch-size 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="existing dataset with flow/*.corr (default: write a synthetic one)")
    p.add_argument("--size", default="256x176", help="load size HxW (and size of the synthetic set)")
    p.add_argument("--pairs", type=int, default=32, help="synthetic train pairs to write and score")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=10, help="timed calls")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()

    from torch.utils.data import default_collate

    from spgnet.config import DatasetConfig
    from spgnet.data.dataset import PairDataset
    from spgnet.flow import part_affine_flow

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            from spgnet.data.synth import write_synthetic_dataset

            root = str(Path(tmp) / "data")
            write_synthetic_dataset(root, args.pairs, 1, size=(h, w), seed=0, progress=False)
        ds = PairDataset(DatasetConfig(root=root, load_size=[h, w], pose_in_loader=False), "train", return_flow=True)
        n = min(len(ds), args.pairs)
        batch = default_collate([ds[i] for i in range(n)])
    keys = ("src_kp", "tgt_kp", "src_parsing", "tgt_parsing", "flow", "vis")
    batch = {k: batch[k].to(device) for k in keys}

    def call(sl: slice):
        return part_affine_flow(batch["src_kp"][sl], batch["tgt_kp"][sl], batch["src_parsing"][sl],
                                batch["tgt_parsing"][sl])

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    first = slice(0, min(args.batch_size, n))
    call(first)
    sync()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        call(first)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"part_affine_flow: {statistics.median(times):.1f} ms per batch of {first.stop} at {h}x{w} "
          f"on {device} ({torch.get_num_threads()} CPU threads)")

    flows, viss = zip(*(call(slice(i, i + args.batch_size)) for i in range(0, n, args.batch_size)))
    flow, vis = torch.cat(flows), torch.cat(viss)[:, 0]
    gt_vis = batch["vis"][:, 0]
    visible = gt_vis == 0
    fg = batch["tgt_parsing"] > 0
    epe = (flow - batch["flow"]).norm(dim=1)[visible].mean().item()
    zero = batch["flow"].norm(dim=1)[visible].mean().item()
    accuracy = ((vis == 0) == visible)[fg].float().mean().item()
    background_ok = bool(torch.equal(vis == 2, ~fg))
    print(f"synthetic GT, {n} pairs: EPE {epe:.2f} px on visible body pixels (zero flow {zero:.2f} px, "
          f"ratio {epe / zero:.3f}); visibility accuracy {accuracy:.3f} on foreground; "
          f"vis == 2 exactly on background: {background_ok}")


if __name__ == "__main__":
    main()
