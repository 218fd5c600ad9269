"""Pose-map speed: median time of ``spgnet.pose.pose_maps`` per batch (default 32 at 256x176).

Random keypoints (a few missing) as a ``(B, 18, 2)`` tensor; each run makes a fresh
output, as training does. Also prints the parts (heat maps, distance maps) and the
floor set by allocating and first touching an output of the same size, which on CPU is
page-fault bound (``THP_MEM_ALLOC_ENABLE=1`` lets PyTorch use huge pages and lowers it).

    python benchmarks/bench_pose.py [--batch-size 32] [--size 256x176] [--runs 15] [--kind heatmap+distance] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def median_ms(fn, runs: int, device: torch.device) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", default="256x176", help="HxW")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--kind", default="heatmap+distance", choices=["heatmap+distance", "disk"])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from spgnet.pose import keypoint_heatmaps, pose_channels, pose_maps, skeleton_distance_maps

    h, w = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(args.batch_size, 18, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    kp[torch.rand(args.batch_size, 18, generator=g) < 0.1] = -1.0
    kp = kp.to(device)
    channels = pose_channels(args.kind)

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"batch {args.batch_size} at {h}x{w}, kind {args.kind} ({channels} ch), median of {args.runs} runs")
    total = median_ms(lambda: pose_maps(kp, (h, w), kind=args.kind), args.runs, device)
    print(f"pose_maps:              {total:7.1f} ms per batch")
    if args.kind == "heatmap+distance":
        buf = torch.empty(args.batch_size, channels, h, w, device=device)
        reused = median_ms(lambda: pose_maps(kp, (h, w), kind=args.kind, out=buf), args.runs, device)
        print(f"pose_maps(out=reused):  {reused:7.1f} ms per batch")
    if args.kind == "heatmap+distance":
        heat = median_ms(lambda: keypoint_heatmaps(kp, (h, w)), args.runs, device)
        dist = median_ms(lambda: skeleton_distance_maps(kp, (h, w)), args.runs, device)
        print(f"  keypoint_heatmaps:    {heat:7.1f} ms (18 ch, fresh output)")
        print(f"  skeleton_distance_maps:{dist:6.1f} ms (12 ch, fresh output)")
    floor = median_ms(lambda: torch.empty(args.batch_size, channels, h, w, device=device).fill_(0), args.runs, device)
    print(f"  floor: allocate + fill the {channels}-ch output: {floor:.1f} ms")


if __name__ == "__main__":
    main()
