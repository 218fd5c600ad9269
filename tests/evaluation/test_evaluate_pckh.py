"""PCKh end to end with the project's real offline detector (mediapipe), not a stub:
the ground-truth targets scored as "generated" images must reach a high PCKh, and a
generated set of the wrong people/poses (the sources) must score clearly lower."""

import csv
import shutil

import pytest

from spgnet.config import DatasetConfig
from spgnet.evaluation.directory import EvalOptions, evaluate_directory


@pytest.fixture(scope="module")
def dataset(synthetic_dataset):
    return synthetic_dataset(2, 8, (256, 176), 5)


def _generated(root, out, use_target: bool):
    out.mkdir()
    with open(root / "pairs-test.csv") as f:
        rows = list(csv.reader(f))[1:]
    for a, b in rows:
        stem = lambda n: n.rsplit(".", 1)[0]  # noqa: E731
        shutil.copy(root / "test" / (b if use_target else a), out / f"{stem(a)}___{stem(b)}.png")
    return out


def test_pckh_with_real_detector(dataset, tmp_path):
    cfg = DatasetConfig(root=str(dataset), image_size=[256, 176], load_size=[256, 176])
    opts = EvalOptions(metrics=("pckh",), progress=False)
    good = evaluate_directory(_generated(dataset, tmp_path / "good", True), cfg, "test", opts, out_dir=tmp_path / "e1")
    bad = evaluate_directory(_generated(dataset, tmp_path / "bad", False), cfg, "test", opts, out_dir=tmp_path / "e2")
    assert not good.unavailable and not bad.unavailable
    assert good.metrics["pckh"] >= 0.9
    assert bad.metrics["pckh"] < good.metrics["pckh"] - 0.2
