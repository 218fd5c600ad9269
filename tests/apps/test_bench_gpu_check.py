"""scripts/gpu_check.sh cannot rot: its dry run (``--device cpu --tiny``) runs the whole
path — the CUDA-only tests through pytest (skipped without a GPU), every benchmark mode
(fp32, bf16 + channels_last, compile traced by TorchDynamo), ours and the reference — and
writes the JSON and the Markdown. Its numbers are the CPU's and are never kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_writes_every_case(tmp_path):
    out = tmp_path / "dry"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(out), "--device", "cpu", "--tiny"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["tiny"] and record["environment"]["device"] == "cpu" and "gpu" not in record["environment"]

    tests = record["tests"]
    assert tests["tests"] >= 8 and tests["failures"] == tests["errors"] == 0, tests
    if not torch.cuda.is_available():
        assert tests["skipped"] == tests["tests"] and tests["skipped_reasons"] == [
            "needs a CUDA GPU (scripts/gpu_check.sh)"]

    (bench,) = record["bench"]  # one run_bench for the tiny plan
    rows = [(c["mode"], c["impl"], c["route"]) for c in bench["cases"]]
    assert rows == [
        ("fp32", "ours", "auto: lookup"), ("fp32", "reference", "reference"),
        ("bf16-cl", "ours", "auto: lookup"), ("bf16-cl", "reference", "reference"),
        ("bf16-cl", "ours", "conv"), ("bf16-cl-compile", "ours", "conv (compiled)"),
        ("bf16-cl-compile", "reference", "reference"),
    ]
    for case in bench["cases"]:
        assert not case["error"], case
        if case["mode"] != "bf16-cl-compile" or case["impl"] == "ours":
            assert case["train_s"] > 0 and case["infer_images_per_s"] > 0 and case["peak_mb"] > 0, case
    assert set(bench["cases"][5]["compile_s"]) == {"train", "infer"}
    assert bench["loader"]["tiny@32x32|2"] > 0 and set(bench["matmul_tflops"]) == {"fp32", "bf16"}
    assert bench["models"]["tiny@32x32"]["max_rel_err"] < 1e-5

    md = (out / "gpu_check.md").read_text()
    assert md.startswith("# GPU check (dry run, cpu)")
    assert "CUDA-only tests (tests/training/test_cuda.py):" in md and md.count("| tiny@32x32 | 2 |") == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: nothing to refuse")
def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("gpu_check: error: --device cuda: no CUDA device")
    assert not (tmp_path / "out").exists()
