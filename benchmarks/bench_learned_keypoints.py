"""Cost of ``--keypoints vitpose``: median time of :meth:`VitPoseKeypoints.predict` per photo
(crop, model, decoding) for 1 and 3 people, with and without the flip test.

The model has the architecture of ViTPose-B (usyd-community/vitpose-base-simple: ViT-B/16,
768 channels, 12 layers, 256x192 input, the simple decoder) with **random weights**, saved
to a temporary folder and loaded as a user's would be: the time does not depend on the
weights' values, so no weights are needed. The photo is scikit-image's astronaut (512x512);
the boxes lie on it.

    python benchmarks/bench_learned_keypoints.py [--runs 7] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def save_vitpose_b(folder: Path) -> Path:
    import transformers

    torch.manual_seed(0)
    backbone = transformers.VitPoseBackboneConfig(
        image_size=[256, 192], patch_size=[16, 16], hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        mlp_ratio=4, out_indices=[12])
    config = transformers.VitPoseConfig(backbone_config=backbone, num_labels=17)
    transformers.VitPoseForPoseEstimation(config).eval().save_pretrained(folder)
    transformers.VitPoseImageProcessor().save_pretrained(folder)
    return folder


def median_ms(fn, runs: int, device: torch.device) -> float:
    for _ in range(2):  # warm-up
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    from skimage import data

    from spgnet.photo.learned_keypoints import VitPoseKeypoints

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    photo = data.astronaut()
    boxes = [(150.0, 20.0, 300.0, 490.0), (10.0, 200.0, 120.0, 300.0), (380.0, 250.0, 120.0, 250.0)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_vitpose_b(Path(tmp) / "vitpose-b")
        print(f"ViTPose-B architecture, random weights; {args.device}, {torch.get_num_threads()} threads; "
              f"photo {photo.shape[1]}x{photo.shape[0]}\n")
        print("| people | flip test | ms per photo |")
        print("|---|---|---|")
        for flip in (False, True):
            model = VitPoseKeypoints(folder, device=args.device, flip_test=flip)
            for n in (1, 3):
                ms = median_ms(lambda: model.predict(photo, boxes[:n]), args.runs, device)
                print(f"| {n} | {'yes' if flip else 'no'} | {ms:.0f} |")
        params = sum(t.numel() for t in model.model.parameters())
        print(f"\n{params / 1e6:.1f} M parameters")


if __name__ == "__main__":
    main()
