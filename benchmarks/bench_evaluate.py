"""``spgnet evaluate`` throughput: generated images/s for SSIM+PSNR+L1, with LPIPS, and FID.

A synthetic set at 256x176 is written to a temporary folder; the "generated" images are
the test targets plus noise. LPIPS and FID run with *random* AlexNet / InceptionV3
weights saved to files (the same architectures and cost as the real weights; the
values mean nothing). FID is timed without the statistics cache, so its row includes
the real training images (reported as images/s over generated + real).

    python benchmarks/bench_evaluate.py [--pairs 64] [--size 256x176] [--device cpu]
        [--batch-size 16] [--workers 2] [--skip-fid]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=64, help="test pairs (generated images) to score")
    p.add_argument("--train-pairs", type=int, default=16, help="synthetic train pairs (the FID real set)")
    p.add_argument("--size", default="256x176", help="image size HxW")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-fid", action="store_true", help="leave out the (slow on CPU) FID row")
    args = p.parse_args()

    import torchvision
    from PIL import Image

    from spgnet.config import DatasetConfig
    from spgnet.data.synth import write_synthetic_dataset
    from spgnet.evaluation.directory import EvalOptions, evaluate_directory
    from spgnet.evaluation.metrics.inception import build_inception

    h, w = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "data"
        t0 = time.perf_counter()
        write_synthetic_dataset(root, args.train_pairs, args.pairs, size=(h, w), seed=0, progress=False)
        pairs = [line.split(",") for line in (root / "pairs-test.csv").read_text().split()[1:]]
        gen = tmp / "generated"
        gen.mkdir()
        rng = np.random.default_rng(0)
        for a, b in pairs:
            target = np.asarray(Image.open(next((root / "test").glob(f"{Path(b).stem}.*"))).convert("RGB"))
            noisy = np.clip(target.astype(np.int16) + rng.integers(-20, 21, target.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(gen / f"{Path(a).stem}___{Path(b).stem}.png")
        torch.manual_seed(0)
        alex, incep = tmp / "alexnet-owt-7be5be79.pth", tmp / "pt_inception-2015-12-05-6726825d.pth"
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
        net = build_inception("pytorch-fid")
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        torch.save(net.state_dict(), incep)
        print(f"set-up: {len(pairs)} generated images at {h}x{w}, {time.perf_counter() - t0:.1f}s")

        cfg = DatasetConfig(root=str(root), load_size=[h, w])
        rows = [("ssim+psnr+l1", ("ssim", "psnr", "l1")),
                ("ssim+mask_ssim+psnr+l1", ("ssim", "mask_ssim", "psnr", "l1")),
                ("+ lpips (AlexNet)", ("ssim", "psnr", "l1", "lpips"))]
        if not args.skip_fid:
            rows.append(("fid (Inception, no cache)", ("fid",)))
        print(f"device {args.device}, batch {args.batch_size}, workers {args.workers}, "
              f"torch threads {torch.get_num_threads()}")
        for label, metrics in rows:
            options = EvalOptions(metrics=metrics, device=args.device, batch_size=args.batch_size, workers=args.workers,
                                  alexnet_weights=str(alex), inception_weights=str(incep), fid_cache=False,
                                  progress=False, report_cases=0)
            t0 = time.perf_counter()
            result = evaluate_directory(gen, cfg, "test", options, tmp / "eval")
            seconds = time.perf_counter() - t0
            n = result.counts["evaluated"]
            extra = ""
            if "fid" in metrics:
                real = result.protocol["fid_real_set"]["images"]
                extra = f"  ({n} generated + {real} real: {(n + real) / seconds:.1f} images/s through Inception)"
            print(f"  {label:28s} {n / seconds:8.1f} generated images/s  ({seconds:.2f}s){extra}")


if __name__ == "__main__":
    main()
