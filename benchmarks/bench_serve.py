"""Latency of one `spgnet serve` transfer request, for a checkpoint and/or the official
DeepFashion-size model (``configs/deepfashion.yaml``, 256x176) with random weights (timing only:
its pixels mean nothing, its cost is the real model's).

For each model: the start-up (``ServeHandlers``: model, gallery, example photos), then
``--requests`` transfer requests of one photo to a gallery pose, timed three ways:

* **handler**: ``ServeHandlers.transfer`` (read the upload, detect, parse, both stages, draw);
* its two parts: ``prepare`` (mediapipe keypoints + mask, coarse parsing at the model size)
  and ``render`` (stage 1 + flow + stage 2, ``PoseTransfer.render``);
* **HTTP**: the same request through the page's API with gradio_client (upload, queue,
  handler, PNG encoding, download), server and client in this process.

Medians (and min) in ms. The photo is a synthetic person rendered at ``--photo-size``, saved
as JPEG (quality 90).

    python benchmarks/bench_serve.py [--checkpoint runs/demo/train/checkpoints/last] [--official]
                                     [--requests 10] [--threads N] [--photo-size 768x512]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(fn, runs: int) -> tuple[float, float]:
    """``(median, min)`` milliseconds of ``runs`` calls of ``fn``."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * min(times)


def official_checkpoint(folder: Path) -> Path:
    """configs/deepfashion.yaml's SPGNet (stage 1 + generator) with random weights, as a checkpoint."""
    import torch

    from spgnet.config import load_config
    from spgnet.pipeline import SPGNet
    from spgnet.utils.checkpoint import save_checkpoint

    cfg = load_config("deepfashion")
    torch.manual_seed(0)
    net = SPGNet(cfg)
    return save_checkpoint(folder / "deepfashion-random", models={"stage1": net.stage1, "generator": net.generator},
                           config_dict=cfg)


def photo(path: Path, size: tuple[int, int]) -> Path:
    from PIL import Image

    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    rng = np.random.default_rng(0)
    image = render_person(sample_identity(rng), sample_pose(rng, view="front", zoom=False), size)["image"]
    Image.fromarray(image).save(path, quality=90)
    return path


def bench(name: str, checkpoint: Path, source: Path, requests: int, tmp: Path) -> None:
    from gradio_client import Client, handle_file

    from spgnet.apps.serve import ServeHandlers, build_app, launch
    from spgnet.photo.prepare import load_photo

    t0 = time.perf_counter()
    handlers = ServeHandlers(checkpoint, "cpu")
    startup = time.perf_counter() - t0
    try:
        model = handlers.model
        params = sum(p.numel() for p in model.net.parameters()) / 1e6
        h, w = handlers.size
        pose = "arms-raised"
        handlers.transfer(str(source), "gallery", pose)  # warm-up: first-call allocations, mediapipe graph
        handler = timed(lambda: handlers.transfer(str(source), "gallery", pose), requests)
        image = load_photo(source)
        prepared = model.prepare_array(image, "photo")
        target = model.pose_from_json(handlers.poses[pose].path, handlers.poses[pose].size)
        prepare = timed(lambda: model.prepare_array(image, "photo"), requests)
        render = timed(lambda: model.render(prepared, target[None]), requests)

        app = build_app(handlers)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = launch(app, port=port)
        try:
            client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))
            call = lambda: client.predict(source=handle_file(str(source)), gallery_pose=pose, api_name="/transfer")  # noqa: E731
            call()
            http = timed(call, requests)
        finally:
            app.close()
    finally:
        handlers.close()
    print(f"\n{name}: {checkpoint}\n  model {h}x{w}, {params:.1f} M parameters; start-up {startup:.1f} s")
    for label, (med, low) in (("handler (whole request)", handler), ("  prepare (detect + parse)", prepare),
                              ("  render (both stages)", render), ("HTTP round trip (gradio_client)", http)):
        print(f"  {label:34s} median {med:8.1f} ms   min {low:8.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="a checkpoint folder (e.g. runs/demo/train/checkpoints/last)")
    p.add_argument("--official", action="store_true", help="also the official 256x176 model, random weights")
    p.add_argument("--requests", type=int, default=10, help="timed requests per measurement (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--photo-size", default="768x512", help="HxW of the source photo (default 768x512)")
    args = p.parse_args()
    if args.checkpoint is None and not args.official:
        p.error("give --checkpoint and/or --official")

    import torch

    from spgnet.utils.parse import parse_size

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; Python {platform.python_version()}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = parse_size(args.photo_size, "--photo-size")
        source = photo(tmp / "person.jpg", size)
        print(f"source photo: synthetic person, {size[0]}x{size[1]} JPEG; {args.requests} requests per line")
        if args.checkpoint:
            bench("checkpoint", Path(args.checkpoint), source, args.requests, tmp)
        if args.official:
            bench("official DeepFashion-size model (configs/deepfashion.yaml), random weights",
                  official_checkpoint(tmp), source, args.requests, tmp)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
