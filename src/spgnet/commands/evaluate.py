"""``spgnet evaluate --generated DIR --dataset CONFIG --split test``: score generated
images against a dataset split (docs/design.md §10; docs/evaluation.md).

Writes ``metrics.json``, ``metrics.md``, ``per_image.csv`` and ``report.html`` to
``--out`` (default ``DIR/eval``). Exit status: 0 every requested metric computed,
3 some unavailable (missing weights or detector; the reasons are printed and stored),
2 bad input (missing files, wrong arguments). Before any image is scored, every dataset
file the split's pairs need is checked (headers only; ``spgnet check`` decodes them all).
"""

from __future__ import annotations

import argparse
import sys

from spgnet.evaluation.directory import ALL_METRICS, IMAGE_FORMATS, RESIZE_METHODS


def _metrics_list(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return ALL_METRICS
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _data_range(text: str) -> float | str:
    if text == "generated":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'generated', got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generated", required=True, metavar="DIR",
                   help="folder of generated images <from-stem>___<to-stem>.png (+ optional _parsing.png)")
    p.add_argument("--dataset", metavar="CONFIG",
                   help="config YAML with a 'data:' section (e.g. configs/market.yaml); default: built-in defaults")
    p.add_argument("--root", help="dataset folder (overrides data.root of the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set data.crop=[0,40,256,176] (repeatable)")
    p.add_argument("--split", default="test", help="split whose pairs were generated (default: test)")
    p.add_argument("--out", help="output folder (default: DIR/eval)")
    p.add_argument("--metrics", type=_metrics_list, default=ALL_METRICS, metavar="LIST",
                   help=f"comma-separated subset of {','.join(ALL_METRICS)} (default: all)")
    g = p.add_argument_group("protocol (every choice is written into metrics.json)")
    g.add_argument("--real-set", default="train", choices=("train", "test"),
                   help="FID reference: every image of this split (default: train)")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="evaluation size (default: data.load_size)")
    g.add_argument("--resize", default="bilinear", choices=RESIZE_METHODS,
                   help="for generated images of another size (default: bilinear, antialiased)")
    g.add_argument("--crop-generated", type=int, nargs=4, metavar=("TOP", "LEFT", "H", "W"),
                   help="crop generated images first (e.g. 0 40 256 176: 256x256 output scored at 256x176)")
    g.add_argument("--pad-to", type=int, nargs=2, metavar=("H", "W"),
                   help="pad generated and real images (centred, white) to this size, as PATN's DeepFashion "
                        "scripts (256 256); default: no padding")
    g.add_argument("--image-format", default="png", choices=IMAGE_FORMATS, help="generated image suffix (default: png)")
    g.add_argument("--ssim-data-range", type=_data_range, default=255.0, metavar="R",
                   help="SSIM data range: a number (default 255) or 'generated' (PATN scripts)")
    g.add_argument("--mask-radius", type=float, default=4.0, help="pose-mask point radius (default: 4)")
    g.add_argument("--lpips-version", default="0.1", choices=("0.1", "0.0"))
    g.add_argument("--alexnet-weights", metavar="PATH", help="torchvision alexnet-owt-7be5be79.pth (LPIPS)")
    g.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth (FID)")
    g.add_argument("--inception-variant", default="pytorch-fid", choices=("pytorch-fid", "torchvision"))
    g.add_argument("--fid-resize", default="bilinear", choices=("bilinear", "none"),
                   help="Inception input resize to 299x299 (default: bilinear, as pytorch-fid)")
    g.add_argument("--fid-cache", metavar="DIR", help="real-set FID statistics cache (default: ~/.cache/spgnet/fid)")
    g.add_argument("--no-fid-cache", action="store_true", help="do not read or write cached FID statistics")
    g.add_argument("--real-stats", metavar="NPZ", help="precomputed real FID statistics (overrides --real-set)")
    g.add_argument("--psnr-cap", type=float, metavar="DB", help="cap per-image PSNR (default: none, identical = inf)")
    p.add_argument("--allow-missing", action="store_true", help="evaluate the pairs that have a generated image")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="image-loading processes (default: 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--report-cases", type=int, default=8, metavar="N", help="best/worst cases in report.html (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spgnet.data.check import preflight
    from spgnet.data.layout import SPLITS
    from spgnet.evaluation.directory import EvalOptions, evaluate_directory, load_dataset_config
    from spgnet.evaluation.report import markdown

    data = load_dataset_config(args.dataset, args.set, args.root)
    if Path(args.generated).is_dir() and args.split in SPLITS:  # else evaluate_directory names the problem
        preflight(data, args.split)
    options = EvalOptions(
        metrics=args.metrics, real_set=args.real_set, size=tuple(args.size) if args.size else None,
        resize=args.resize, crop_generated=tuple(args.crop_generated) if args.crop_generated else None,
        pad_to=tuple(args.pad_to) if args.pad_to else None, image_format=args.image_format,
        ssim_data_range=args.ssim_data_range, mask_point_radius=args.mask_radius, lpips_version=args.lpips_version,
        alexnet_weights=args.alexnet_weights, inception_variant=args.inception_variant,
        inception_weights=args.inception_weights, fid_resize=args.fid_resize, fid_cache=not args.no_fid_cache,
        fid_cache_dir=args.fid_cache, real_stats=args.real_stats, psnr_cap=args.psnr_cap,
        allow_missing=args.allow_missing, batch_size=args.batch_size, workers=args.workers, device=args.device,
        report_cases=args.report_cases, progress=not args.no_progress,
    )
    result = evaluate_directory(args.generated, data, args.split, options, args.out)
    print(markdown(result), end="")
    for name, reason in result.unavailable.items():
        print(f"spgnet evaluate: {name} unavailable: {reason}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    return result.exit_code
