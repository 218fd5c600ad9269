"""``spgnet bench``: speed, FLOPs and memory of our generator against the straightforward
reference implementation (see :mod:`spgnet.apps.bench` and docs/performance.md)."""

from __future__ import annotations

import argparse
import shlex
import sys


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from spgnet.apps.bench import DEFAULT_SETTINGS, IMPLS, MEASURES, MODES, ROUTE_CHOICES

    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), metavar="PRESET@HxW,...",
                   help=f"model presets and sizes (default {','.join(DEFAULT_SETTINGS)})")
    p.add_argument("--batch", default="4,32", metavar="B,...", help="batch sizes (default 4,32)")
    p.add_argument("--modes", default="fp32,bf16-cl", metavar="MODE,...",
                   help=f"precision/layout modes from {', '.join(MODES)} (default fp32,bf16-cl)")
    p.add_argument("--impl", default=",".join(IMPLS), metavar="IMPL,...",
                   help="implementations: ours, reference (default both)")
    p.add_argument("--measure", default=",".join(MEASURES), metavar="M,...",
                   help="train (G+D step), fwdbwd (G forward+backward), infer (default all)")
    p.add_argument("--routes", default="auto", metavar="ROUTE,...",
                   help=f"ACE routes of ours from {', '.join(ROUTE_CHOICES)} (default auto: the default choice; "
                        "compiled rows always run conv, and get an eager conv row beside them)")
    p.add_argument("--compile-backend", default="inductor", metavar="NAME",
                   help="torch.compile backend of the compile modes (default inductor; 'eager' only traces: "
                        "a quick dry run of the compile path)")
    p.add_argument("--matmul-seconds", type=float, default=1.0,
                   help="seconds spent measuring each matmul rate (default 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per measurement (default 1)")
    p.add_argument("--steps", type=int, default=3, help="timed calls per measurement; the median is reported (default 3)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (it runs a forward of each model)")
    p.add_argument("--loader-workers", type=int, default=2, help="data loader workers (default 2; -1 skips the loader)")
    p.add_argument("--loader-samples", type=int, default=64, help="samples timed through the loader (default 64)")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="a Python file defining ReferenceGenerator (default: spgnet.models.reference)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--ablation", action="store_true",
                   help="instead: what each restructuring bought (GFLOP and G forward+backward time per step, "
                        "fp32) for each setting and batch")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the results as JSON (rewritten after every case)")
    p.add_argument("--markdown", default=None, metavar="PATH",
                   help="also write the tables as Markdown (rewritten after every case)")


def run(args: argparse.Namespace) -> int:
    import torch

    from spgnet import SPGNetError
    from spgnet.apps.bench import format_markdown, run_bench
    from spgnet.utils.io import atomic_write_text

    try:
        batches = tuple(int(b) for b in _csv(args.batch))
    except ValueError:
        raise SPGNetError(f"--batch {args.batch!r}: expected comma-separated integers") from None
    if not batches or min(batches) < 1:
        raise SPGNetError(f"--batch {args.batch!r}: batch sizes must be >= 1")
    if args.warmup < 0 or args.steps < 1:
        raise SPGNetError("--warmup must be >= 0 and --steps >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.matmul_seconds <= 0:
        raise SPGNetError("--matmul-seconds must be > 0")
    if args.ablation:
        return _ablation(args, batches)
    command = "spgnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def write(report) -> None:
        """The files as they stand: rewritten whole (atomically) after every case."""
        report.command = command
        if args.markdown:
            atomic_write_text(args.markdown, format_markdown(report) + "\n")
        if args.json:
            atomic_write_text(args.json, report.to_json() + "\n")

    report = run_bench(settings=tuple(_csv(args.settings)), batches=batches, modes=tuple(_csv(args.modes)),
                       impls=tuple(_csv(args.impl)), measures=tuple(_csv(args.measure)), device=args.device,
                       warmup=args.warmup, steps=args.steps, flops=not args.no_flops,
                       loader_workers=args.loader_workers, loader_samples=args.loader_samples,
                       reference=args.reference, matmul_seconds=args.matmul_seconds,
                       routes=tuple(_csv(args.routes)), compile_backend=args.compile_backend,
                       on_update=write, log=lambda m: print(m, flush=True))
    write(report)
    print()
    print(format_markdown(report))
    failed = [c for c in report.cases if c.error]
    if failed:  # every other case ran and is in the table and the files
        print(f"bench: {len(failed)} of {len(report.cases)} cases failed (each row says why)", file=sys.stderr)
        return 3
    return 0


def _ablation(args: argparse.Namespace, batches: tuple[int, ...]) -> int:
    import json

    from spgnet.apps.bench import format_ablation, parse_setting, route_ablation
    from spgnet.utils.io import atomic_write_text

    tables, results = [], {}
    for setting in _csv(args.settings):
        parse_setting(setting)
        for batch in batches:
            rows = route_ablation(setting, batch, device=args.device, warmup=args.warmup, steps=args.steps,
                                  reference=args.reference, include_reference="reference" in _csv(args.impl),
                                  log=lambda m: print(m, flush=True))
            tables.append(format_ablation(rows, setting, batch))
            results[f"{setting}|{batch}"] = rows
    text = "\n\n".join(tables)
    print()
    print(text)
    if args.markdown:
        atomic_write_text(args.markdown, text + "\n")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0
