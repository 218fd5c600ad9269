import pytest

from spgnet import SPGNetError
from spgnet.config import load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata:\n  root: /d\n  pairs_file: fasion-resize-pairs-{split}.csv\n  load_size: [256, 176]\n")
    cfg = load_config(path, ["data.pose.sigma=3", "data.crop=[0, 40, 256, 176]"])
    assert cfg.name == "x"
    assert cfg.data.load_size == [256, 176]
    assert cfg.data.pose.sigma == 3
    assert cfg.data.crop == [0, 40, 256, 176]
    assert str(cfg.data.path("pairs_file", "test")) == "/d/fasion-resize-pairs-test.csv"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  rooot: /d\n")
    with pytest.raises(SPGNetError, match="rooot"):
        load_config(path)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(SPGNetError, match="key=value"):
        load_config(None, ["data.root"])
    with pytest.raises(SPGNetError, match="not found"):
        load_config(tmp_path / "nope.yaml")
