"""spgnet bench cannot abort: every mode (eager fp32, bf16 + channels_last, and compiled) runs
at a tiny size with every case in the table, a failing case is reported in its row with
one line while the others run, the files are rewritten after every case, every row names
its ACE route, and the compile time of every measure is recorded.

The compile mode runs with ``--compile-backend eager`` (TorchDynamo traces G and D, no
code generation): the same compile path as inductor, in seconds instead of the minutes
inductor needs on this CPU."""

from __future__ import annotations

import json

import torch

import spgnet.apps.bench as bench
from spgnet.cli import main

# a reference generator that fails under autocast only: the bf16 reference case fails, the
# fp32 one (and the FLOP count, in fp32) runs
FAILING_REFERENCE = '''
import torch
from spgnet.models.reference import ReferenceGenerator as Base


class ReferenceGenerator(Base):
    def forward(self, *args):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("deliberate failure under autocast\\nsecond line of the message")
        return super().forward(*args)
'''


def test_every_mode_runs_and_a_failing_case_is_reported(tmp_path, monkeypatch, capsys):
    reference = tmp_path / "failing_reference.py"
    reference.write_text(FAILING_REFERENCE)
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    seen_before_case = []
    real_run_case = bench.run_case

    def run_case(*args, **kwargs):  # what the JSON file holds when each case starts
        data = json.loads(out_json.read_text()) if out_json.exists() else None
        seen_before_case.append(None if data is None else len(data["cases"]))
        return real_run_case(*args, **kwargs)

    monkeypatch.setattr(bench, "run_case", run_case)
    threads = torch.get_num_threads()
    code = main(["bench", "--settings", "tiny@32x32", "--batch", "2", "--modes", "fp32,bf16-cl,bf16-cl-compile",
                 "--measure", "train,infer", "--warmup", "0", "--steps", "1", "--loader-workers", "-1",
                 "--matmul-seconds", "0.02", "--compile-backend", "eager", "--threads", "1",
                 "--reference", str(reference), "--json", str(out_json), "--markdown", str(out_md)])
    torch.set_num_threads(threads)
    captured = capsys.readouterr()
    assert code == 3, captured.err  # finished, with a failed case
    assert "1 of 7 cases failed" in captured.err

    data = json.loads(out_json.read_text())
    rows = [(c["mode"], c["impl"], c["route"]) for c in data["cases"]]
    assert rows == [
        ("fp32", "ours", "auto: lookup"), ("fp32", "reference", "reference"),
        ("bf16-cl", "ours", "auto: lookup"), ("bf16-cl", "reference", "reference"),
        ("bf16-cl", "ours", "conv"),  # the eager twin of the compiled row: the same route
        ("bf16-cl-compile", "ours", "conv (compiled)"), ("bf16-cl-compile", "reference", "reference"),
    ]
    assert seen_before_case == [0, 1, 2, 3, 4, 5, 6]  # rewritten after every case
    by_row = {(c["mode"], c["impl"], c["requested_route"]): c for c in data["cases"]}

    failed = by_row[("bf16-cl", "reference", "")]
    assert failed["train_s"] is None and failed["infer_images_per_s"] is None
    assert "train: RuntimeError: deliberate failure under autocast" in failed["error"]
    assert "infer: RuntimeError: deliberate failure under autocast" in failed["error"]
    assert "second line" not in failed["error"]  # one line per failure

    for key in [("fp32", "ours", "auto"), ("fp32", "reference", ""), ("bf16-cl", "ours", "auto"),
                ("bf16-cl", "ours", "conv"), ("bf16-cl-compile", "ours", "conv")]:
        case = by_row[key]
        assert not case["error"], (key, case["error"])
        assert case["train_s"] > 0 and case["infer_images_per_s"] > 0 and case["train_samples_per_s"] > 0, key
    compiled = by_row[("bf16-cl-compile", "ours", "conv")]
    assert set(compiled["compile_s"]) == {"train", "infer"} and min(compiled["compile_s"].values()) > 0
    assert by_row[("bf16-cl", "ours", "conv")]["compile_s"] == {}  # eager: nothing compiled
    assert "n/a" in by_row[("bf16-cl-compile", "reference", "")]["note"]
    # FLOPs of the conv route counted for the forced and the compiled rows
    assert data["models"]["tiny@32x32"]["train_gflop_ours_conv"] > 0

    table = out_md.read_text()
    assert table.count("| tiny@32x32 | 2 |") == 7
    assert "**failed** saved: RuntimeError: deliberate failure under autocast" in table
    assert "| conv (compiled) |" in table and "train " in table
    assert "**ours vs reference** | auto: lookup |" in table  # only where both ran


def test_plan_cases_adds_the_eager_twin_of_a_compiled_row():
    assert bench.plan_cases(("fp32", "bf16-cl-compile"), ("ours", "reference"), ("auto", "shell")) == [
        ("fp32", "ours", "auto"), ("fp32", "ours", "shell"), ("fp32", "reference", ""),
        ("bf16-cl", "ours", "conv"), ("bf16-cl-compile", "ours", "conv"), ("bf16-cl-compile", "reference", ""),
    ]
    # the twin is not repeated when conv is asked for anyway
    assert bench.plan_cases(("bf16-cl", "bf16-cl-compile"), ("ours",), ("conv",)) == [
        ("bf16-cl", "ours", "conv"), ("bf16-cl-compile", "ours", "conv")]


def test_a_case_past_the_deadline_is_listed_not_run():
    report = bench.run_bench(settings=("tiny@32x32",), batches=(1,), modes=("fp32",), impls=("ours",),
                             measures=("infer",), warmup=0, steps=1, flops=False, loader_workers=-1,
                             matmul_seconds=0.01, deadline=0.0, log=lambda m: None)
    (case,) = report.cases
    assert case.infer_images_per_s is None and case.note == "not run: the time budget was spent"


def test_routes_used_names_what_ran():
    from spgnet.models.generator import SPGNetGenerator

    cfg = bench.bench_preset("tiny").generator
    x = bench.synthetic_inputs(1, (48, 48), cfg.pose_channels)
    args = bench.generator_args(x)
    net = SPGNetGenerator(cfg).train()
    cpu = torch.device("cpu")
    for forced in ("conv", "lookup", "shell"):
        net.ace_route = forced
        assert bench.routes_used(net, args, cpu, "fp32") == forced
    net.ace_route = None
    assert bench.routes_used(net, args, cpu, "fp32") in ("shell", "lookup", "shell+lookup", "lookup+shell")
    assert net.training and "modulation" not in vars(net.decoder[0].norm)  # restored
