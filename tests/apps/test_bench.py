"""spgnet bench (src/spgnet/bench.py): one tiny end-to-end run of both implementations, and
the CLI's input checking. The real measurements live in docs/performance.md."""

import pytest
import torch

from spgnet.apps.bench import format_markdown, parse_setting, run_bench, synthetic_inputs
from spgnet.cli import main


def test_bench_runs_both_implementations():
    report = run_bench(settings=("official-market@64x64",), batches=(1,), modes=("fp32",), warmup=0, steps=1,
                       loader_workers=-1, matmul_seconds=0.05, log=lambda m: None)
    info = report.models["official-market@64x64"]
    assert info["params_g"] == 30_914_805  # the official Market generator with 18 pose channels
    assert 0 < info["gflop_ours"] < info["gflop_reference"]
    assert info["max_rel_err"] < 1e-5  # same weights, same noise: the same generator
    ours, ref = report.cases
    assert (ours.impl, ref.impl) == ("ours", "reference") and not ref.note
    for case in (ours, ref):
        assert case.train_s > 0 and case.fwdbwd_s > 0 and case.infer_images_per_s > 0 and case.saved_mb > 0
    table = format_markdown(report)
    assert "**ours vs reference**" in table and "official-market@64x64" in table
    assert set(report.matmul_tflops) == {"fp32", "bf16"}


def test_synthetic_inputs_are_a_consistent_batch():
    x = synthetic_inputs(3, (64, 48), 30, unique=2)
    assert x["src_image"].shape == (3, 3, 64, 48) and x["tgt_pose"].shape == (3, 30, 64, 48)
    assert torch.equal(x["tgt_parsing_onehot"].sum(1), torch.ones(3, 64, 48))  # hard one-hot
    assert torch.equal(x["src_image"][2], x["src_image"][0])  # 2 unique pairs repeated
    assert set(x["vis"].unique().tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("argv,message", [
    (["--settings", "nosuch@64x64"], "PRESET@HxW"),
    (["--settings", "market@64"], "HEIGHTxWIDTH"),
    (["--modes", "fp64"], "mode 'fp64'"),
    (["--batch", "0"], "batch sizes"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(["bench", *argv, "--impl", "ours", "--loader-workers", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_parse_setting():
    assert parse_setting("deepfashion@256x176") == ("deepfashion", (256, 176))


def test_autograd_saved_mb_counts_saved_activations_not_parameters():
    from spgnet.apps.bench import autograd_saved_mb

    lin = torch.nn.Linear(256, 256)
    x = torch.randn(1024, 256)  # 1 MB, saved by the matmul for the weight gradient
    mb = autograd_saved_mb(lambda: lin(x).relu(), exclude=tuple(lin.parameters()))
    assert mb == pytest.approx(2.0)  # x and the ReLU output, 1 MB each; the weight is excluded
