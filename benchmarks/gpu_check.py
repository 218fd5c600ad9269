"""The first GPU session in one command (``scripts/gpu_check.sh`` runs this): the CUDA-only
tests and the generator benchmarks, written as one JSON and one Markdown file into a folder.

1. CUDA-only tests: ``tests/training/test_cuda.py`` (host syncs of a training step counted
   by CUDA, the look-up routes equal to the conv route, every AMP mode on every route,
   ``train.deterministic``), through pytest, with a time limit.
2. Benchmarks (:func:`spgnet.apps.bench.run_bench`): ours against the reference, fp32,
   bf16 + channels_last and ``torch.compile`` (with the eager row of the compiled route
   beside it), training step and inference, peak memory, samples/s of the step and of
   the data loader, GFLOP and the achieved share of the measured matmul rate; DeepFashion
   at 256×176 with the configs' per-GPU batch 4, then Market at 128×64 with its batch 32.

Time: everything stops starting new work once the budget (``--budget-s``, default 570 s)
is near: cases not started by ``budget − reserve`` are listed as not run (a compile case
takes minutes: ``--reserve-s`` keeps 180 s for the last one to finish). The files are
rewritten after every case, so whatever ran is kept even if the process is killed.

``--device cpu --tiny`` is a dry run (tests/apps/test_bench_gpu_check.py runs it): the
``tiny`` model at 32×32, one step per measure, the compile path traced by TorchDynamo
only (``--compile-backend eager``). Its numbers are CPU numbers and mean nothing.

    scripts/gpu_check.sh                       # gpu-check/gpu_check.{json,md}
    scripts/gpu_check.sh out --device cuda:1
    scripts/gpu_check.sh /tmp/dry --device cpu --tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CUDA_TESTS = ("tests/training/test_cuda.py",)

# one run_bench per entry: (settings, batches) and how long to measure
FULL = [dict(settings=("deepfashion@256x176",), batches=(4,), steps=5, warmup=2, loader_workers=4,
             loader_samples=64, matmul_seconds=1.0),
        dict(settings=("market@128x64",), batches=(32,), steps=5, warmup=2, loader_workers=4,
             loader_samples=128, matmul_seconds=0.5)]
TINY = [dict(settings=("tiny@32x32",), batches=(2,), steps=1, warmup=0, loader_workers=0, loader_samples=4,
             matmul_seconds=0.02)]


def run_tests(out: Path, device: str, timeout: float) -> dict:
    """pytest on :data:`CUDA_TESTS`: counts, the failures (one line each), the time."""
    xml = out / "cuda-tests.xml"
    env = {**os.environ, "SPGNET_GPU_TEST_DEVICE": device if device.startswith("cuda") else "cuda"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO / "src"), env.get("PYTHONPATH"))))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "-rs",
           *(str(REPO / t) for t in CUDA_TESTS)]
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s", "seconds": time.monotonic() - t0}
    result: dict = {"exit_code": done.returncode, "seconds": round(time.monotonic() - t0, 1),
                    "summary": (done.stdout.strip().splitlines() or [""])[-1]}
    try:
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        for key in ("tests", "failures", "errors", "skipped"):
            result[key] = int(suite.get(key, 0))
        result["failed"] = [
            f"{case.get('name')}: {' '.join((bad.get('message') or '').split())[:300]}"
            for case in suite.iter("testcase") for bad in (*case.findall("failure"), *case.findall("error"))]
        result["skipped_reasons"] = sorted({" ".join((s.get("message") or "").split())
                                            for case in suite.iter("testcase") for s in case.findall("skipped")})
    except (OSError, ET.ParseError) as exc:
        result["report_error"] = f"{type(exc).__name__}: {exc}"
        result["output_tail"] = (done.stdout + done.stderr)[-2000:]
    return result


def environment(device: str) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": device, "cpu_count": os.cpu_count(), "host": platform.node()}
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        env["gpu"] = torch.cuda.get_device_name(dev)
        env["gpu_memory_gb"] = round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1)
    return env


def tests_markdown(tests: dict) -> list[str]:
    if "tests" not in tests:
        return [f"CUDA-only tests ({', '.join(CUDA_TESTS)}): {tests.get('status') or tests.get('report_error')}"]
    passed = tests["tests"] - tests["failures"] - tests["errors"] - tests["skipped"]
    lines = [f"CUDA-only tests ({', '.join(CUDA_TESTS)}): {passed} passed, {tests['failures'] + tests['errors']} "
             f"failed, {tests['skipped']} skipped in {tests['seconds']} s."]
    lines += [f"* failed: {line}" for line in tests["failed"]]
    lines += [f"* skipped: {reason}" for reason in tests["skipped_reasons"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="gpu-check", help="output folder (default gpu-check/)")
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (default cuda)")
    p.add_argument("--tiny", action="store_true", help="dry run: the tiny model, one step, compile traced only")
    p.add_argument("--budget-s", type=float, default=570.0, help="total time budget in seconds (default 570)")
    p.add_argument("--reserve-s", type=float, default=180.0,
                   help="no case starts later than budget minus this (default 180: a compile case)")
    p.add_argument("--tests-timeout-s", type=float, default=150.0, help="limit of the CUDA-only tests (default 150)")
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; --tiny: eager)")
    p.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 for a --tiny run on the CPU)")
    args = p.parse_args(argv)

    t0 = time.monotonic()
    import torch

    threads = args.threads or (1 if args.tiny and args.device == "cpu" else None)
    if threads:  # a toy model on a loaded CPU: more threads only wait for each other
        torch.set_num_threads(threads)

    from spgnet import SPGNetError
    from spgnet.apps.bench import format_markdown, run_bench
    from spgnet.utils.io import atomic_write_text

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: error: --device {args.device}: no CUDA device here (--device cpu --tiny is the dry run)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"command": " ".join(["scripts/gpu_check.sh", *(argv if argv is not None else sys.argv[1:])]),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny,
                    "environment": environment(args.device), "tests": {"status": "not run"}, "bench": []}
    reports: list = []  # one BenchReport per entry of the plan, the last one still running

    def write(report=None) -> None:
        if report is not None and (not reports or reports[-1] is not report):
            reports.append(report)
        record["bench"] = [json.loads(r.to_json()) for r in reports]
        record["seconds"] = round(time.monotonic() - t0, 1)
        env = record["environment"]
        head = [f"# GPU check ({'dry run, ' if args.tiny else ''}{env.get('gpu', env['device'])})", "",
                f"`{record['command']}` — started {record['started']}, {record['seconds']} s so far; "
                f"torch {env['torch']}, CUDA {env['cuda']}, Python {env['python']}.", ""]
        body = tests_markdown(record["tests"])
        for r in reports:
            body += ["", format_markdown(r)]
        atomic_write_text(out / "gpu_check.md", "\n".join(head + body).rstrip() + "\n")
        atomic_write_text(out / "gpu_check.json", json.dumps(record, indent=2) + "\n")

    write()
    if not args.skip_tests:
        print(f"gpu_check: CUDA-only tests ({', '.join(CUDA_TESTS)})", flush=True)
        record["tests"] = run_tests(out, args.device, min(args.tests_timeout_s, args.budget_s / 3))
        print("gpu_check: " + tests_markdown(record["tests"])[0], flush=True)
        write()
    backend = args.compile_backend or ("eager" if args.tiny else "inductor")
    for plan in TINY if args.tiny else FULL:
        try:
            report = run_bench(settings=plan["settings"], batches=plan["batches"],
                               modes=("fp32", "bf16-cl", "bf16-cl-compile"), impls=("ours", "reference"),
                               measures=("train", "infer"), device=args.device, warmup=plan["warmup"],
                               steps=plan["steps"], loader_workers=plan["loader_workers"],
                               loader_samples=plan["loader_samples"], matmul_seconds=plan["matmul_seconds"],
                               compile_backend=backend, on_update=write,
                               deadline=t0 + args.budget_s - args.reserve_s, log=lambda m: print(m, flush=True))
        except SPGNetError as exc:
            print(f"gpu_check: error: {exc}", file=sys.stderr)
            return 2
        write(report)
    failed = [c for r in reports for c in r.cases if c.error]
    tests = record["tests"]
    bad_tests = tests.get("failures", 0) + tests.get("errors", 0) + (0 if "tests" in tests or args.skip_tests else 1)
    print(f"gpu_check: wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} in {record['seconds']} s; "
          f"{len(failed)} failed case(s), {bad_tests} failed test(s)", flush=True)
    return 1 if failed or bad_tests else 0


if __name__ == "__main__":
    sys.exit(main())
