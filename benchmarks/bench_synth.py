"""Synthetic people speed: pairs per second of ``write_synthetic_dataset`` (files included).

Writes ``--pairs`` train pairs (no test split) at ``--size`` into a temporary folder for
each worker count, then prints the median time per picture of the stages (render, flow,
PNG and .corr encoding) measured in this process.

    python benchmarks/bench_synth.py [--pairs 300] [--size 256x176] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--size", default="256x176", help="HxW")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=30, help="runs of each stage for the breakdown")
    args = p.parse_args()

    from spgnet.utils.io import encode_png
    from spgnet.utils.parse import parse_size
    from spgnet.data.corr import encode_corr
    from spgnet.data.synth import ground_truth_flow, render_person, sample_identity, sample_pose, \
        write_synthetic_dataset

    size = parse_size(args.size)
    print(f"{args.pairs} pairs at {size[0]}x{size[1]} (3 poses per identity: 1 picture + 1 flow per pair)")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            s = write_synthetic_dataset(tmp, args.pairs, 0, size=size, seed=0, workers=workers, progress=False)
        print(f"workers {workers}: {s['pairs_per_second']:7.1f} pairs/s ({s['seconds']:.2f} s)")

    ident = sample_identity(np.random.default_rng(0))
    poses = [sample_pose(np.random.default_rng(i)) for i in range(2)]
    a, b = (render_person(ident, pose, size) for pose in poses)
    flow, vis = ground_truth_flow(a, b)
    print(f"render_person:     {median_ms(lambda: render_person(ident, poses[0], size), args.runs):6.2f} ms")
    print(f"ground_truth_flow: {median_ms(lambda: ground_truth_flow(a, b), args.runs):6.2f} ms")
    print(f"PNG image+parsing: {median_ms(lambda: (encode_png(a['image'], 1), encode_png(a['parsing'], 1)), args.runs):6.2f} ms")
    print(f"encode .corr:      {median_ms(lambda: encode_corr(flow, vis), args.runs):6.2f} ms")


if __name__ == "__main__":
    main()
