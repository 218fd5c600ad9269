"""``spgnet info``: parameter and FLOP table of a config."""

from __future__ import annotations

from spgnet.cli import main
from spgnet.config import Config
from spgnet.pipeline import build_generator
from spgnet.utils.torch_utils import count_parameters


def test_a_config_with_only_a_data_section_gives_the_default_model(tmp_path, capsys):
    """Defaults must make a working model: this config once ended in an internal error
    (BatchNorm in training mode at the 1x1 bottleneck with batch 1)."""
    path = tmp_path / "data-only.yaml"
    path.write_text("data:\n  root: somewhere\n")
    assert main(["info", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    expected = count_parameters(build_generator(Config()))  # the default generator, built directly
    row = next(line for line in out.splitlines() if line.startswith("| generator |"))
    assert f"{expected:,}" in row
    assert "| discriminator |" in out and "| stage1 (SPATN) |" in out


def test_bad_value_is_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  pose: {kind: heatmaps}\n")
    assert main(["info", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.pose.kind" in err and "heatmap+distance, heatmap, disk" in err
