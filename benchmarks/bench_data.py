"""Data-loading throughput: samples/s of PairDataset through a DataLoader.

Default: a synthetic set at 256x176 (written to a temporary folder unless --root is
given), 2 workers, batch 8, pose maps made in the workers and the one-hot parsing left
to the device (the DatasetConfig defaults).

    python benchmarks/bench_data.py [--root DATA] [--workers 2] [--batch-size 8] [--samples 400]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="existing dataset (default: write a synthetic one)")
    p.add_argument("--size", default="256x176", help="image size HxW of the synthetic set and the loader")
    p.add_argument("--pairs", type=int, default=64, help="synthetic train pairs to write")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--samples", type=int, default=400, help="samples to time (after one warm-up batch)")
    p.add_argument("--flow", action="store_true", help="also load .corr flow")
    p.add_argument("--maps-on-device", action="store_true", help="leave pose maps and one-hot parsing to complete_batch")
    p.add_argument("--onehot-in-loader", action="store_true", help="make the one-hot parsing in the workers too")
    args = p.parse_args()

    from spgnet.config import DatasetConfig
    from spgnet.data.dataset import make_loader

    h, w = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            from spgnet.data.synth import write_synthetic_dataset

            root = str(Path(tmp) / "data")
            t0 = time.perf_counter()
            write_synthetic_dataset(root, args.pairs, 4, size=(h, w), seed=0, progress=False)
            print(f"wrote {args.pairs} synthetic pairs at {h}x{w} in {time.perf_counter() - t0:.1f}s")
        cfg = DatasetConfig(
            root=root, load_size=[h, w], use_flow=args.flow,
            pose_in_loader=not args.maps_on_device, onehot_in_loader=args.onehot_in_loader and not args.maps_on_device,
        )
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        loader = make_loader(cfg, "train", batch_size=args.batch_size, shuffle=True, workers=args.workers)
        n = 0
        it = iter(loader)
        warm = next(it)["src_image"].shape[0]  # warm-up: worker start and first batch
        self0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        while n < args.samples:
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                continue
            n += batch["src_image"].shape[0]
        dt = time.perf_counter() - t0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        del it, loader, batch  # workers exit, so their CPU time is counted below
        gc.collect()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = lambda a, b: (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)  # noqa: E731
        worker_ms = 1000 * cpu(children0, children1) / (n + warm)
        main_ms = 1000 * cpu(self0, self1) / n
        where = {True: "workers", False: "device (not timed)"}
        print(
            f"{n / dt:.1f} samples/s ({n} samples in {dt:.2f}s; {h}x{w}, workers={args.workers}, "
            f"batch={args.batch_size}, flow={args.flow}, pose maps: {where[cfg.pose_in_loader]}, "
            f"one-hot: {where[cfg.onehot_in_loader]}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        if args.workers:
            # CPU time is not stolen by other processes: what the workers could do on free cores
            print(
                f"CPU per sample: {worker_ms:.1f} ms in the workers, {main_ms:.1f} ms in the main process -> "
                f"{1000 * args.workers / worker_ms:.0f} samples/s with {args.workers} free cores for the workers"
            )


if __name__ == "__main__":
    main()
