import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spgnet import SPGNetError
from spgnet.config import (AMP_MODES, DEVICES, FLOW_KINDS, GAN_MODES, POSE_KINDS, SCHEMES, Config,
                           LossWeights, PoseConfig, config_from_dict, dump_config, load_config)

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted({*REPO.glob("configs/*.yaml"), *REPO.glob("src/spgnet/configs/*.yaml")})


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


# --------------------------------------------------------------------------- validation at load


def assert_rejected(overrides, *words):
    """load_config(None, overrides) fails with one line containing every word."""
    with pytest.raises(SPGNetError) as info:
        load_config(None, list(overrides))
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def _join(choices):
    return ", ".join(choices)


def test_defaults_validate():
    cfg = Config()
    assert cfg == load_config(None)
    assert config_from_dict(yaml.safe_load(dump_config(cfg))) == cfg  # a dumped config loads back


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.data.pose.channels == cfg.model.generator.pose_channels == cfg.model.spatn.pose_channels
    assert isinstance(cfg.train.lr_g, float)


def test_there_are_config_files():
    assert CONFIG_FILES


@pytest.mark.parametrize("override, words", [
    ("train.scheme=paralel", ("train.scheme", "'paralel'", _join(SCHEMES))),
    ("train.scheme=1", ("train.scheme", _join(SCHEMES))),
    ("train.amp=fp32", ("train.amp", "'fp32'", _join(AMP_MODES))),
    ("train.flow=affine", ("train.flow", "'affine'", _join(FLOW_KINDS))),
    ("train.gan_mode=wgan", ("train.gan_mode", "'wgan'", _join(GAN_MODES))),
    ("train.device=gpu", ("train.device", "'gpu'", _join(DEVICES))),
    ("train.device=cuda:x", ("train.device", _join(DEVICES))),
    ("train.device=0", ("train.device", _join(DEVICES))),
    ("data.pose.kind=heatmaps", ("data.pose.kind", "'heatmaps'", _join(POSE_KINDS))),
    ("model.generator.variant=sean", ("model.generator.variant", "'sean'", "full, sean-only")),
    ("model.generator.upsample_norm=middle", ("model.generator.upsample_norm", "before, after")),
    ("model.generator.noise_layout=cuda", ("model.generator.noise_layout", "device, official")),
    ("model.spatn.input=pose", ("model.spatn.input", "parsing, image")),
    ("model.discriminator.norm=layer", ("model.discriminator.norm", "batch, instance, none")),
])
def test_bad_choice_is_named_with_allowed_values(override, words):
    assert_rejected([override], *words)


@pytest.mark.parametrize("override", [
    *(f"train.scheme={v}" for v in SCHEMES), *(f"train.amp={v}" for v in AMP_MODES),
    *(f"train.flow={v}" for v in FLOW_KINDS), *(f"train.gan_mode={v}" for v in GAN_MODES),
    "train.device=auto", "train.device=cpu", "train.device=cuda", "train.device=cuda:3", "train.device=mps",
])
def test_allowed_choices_load(override):
    load_config(None, [override])


@pytest.mark.parametrize("overrides, words", [
    (["data.pose.sigma=0"], ("data.pose.sigma", "> 0", "got 0")),
    (["data.pose.sigma=-1"], ("data.pose.sigma", "> 0")),
    (["data.pose.sigma=abc"], ("data.pose.sigma", "'abc'")),
    (["data.pose.kappa=0"], ("data.pose.kappa", "< 0")),
    (["data.pose.kappa=0.1"], ("data.pose.kappa", "< 0")),
    (["data.pose.kappa=-.inf"], ("data.pose.kappa", "finite")),
    (["data.pose.kappa=.nan"], ("data.pose.kappa", "finite")),
    (["data.pose.disk_radius=-1"], ("data.pose.disk_radius", ">= 0")),
    (["data.pose.sigma=[3]"], ("data.pose.sigma", "[3]")),
    (["data.pose.sigma=true"], ("data.pose.sigma", "True")),
])
def test_bad_pose_value(overrides, words):
    assert_rejected(overrides, *words)


@pytest.mark.parametrize("overrides, expected", [
    (["data.pose.kind=disk", "model.generator.pose_channels=18", "model.spatn.pose_channels=18"], 18),
    (["data.pose.sigma=1", "data.pose.kappa=-1e-9", "data.pose.disk_radius=0"], 30),
    (["data.pose.sigma=2e-1"], 30),  # YAML 1.1 reads 2e-1 as a string: converted
])
def test_good_pose_values(overrides, expected):
    cfg = load_config(None, overrides)
    assert cfg.data.pose.channels == expected
    assert isinstance(cfg.data.pose.sigma, float)


@pytest.mark.parametrize("overrides, words", [
    (["data.pose.kind=disk", "model.generator.pose_channels=30", "model.spatn.pose_channels=30"],
     ("model.generator.pose_channels is 30", "data.pose.kind='disk' gives 18 channels", "model.spatn.pose_channels=18")),
    (["model.generator.pose_channels=18"], ("model.generator.pose_channels is 18", "gives 30 channels")),
    (["model.spatn.pose_channels=18"], ("model.spatn.pose_channels is 18", "gives 30 channels")),
    (["data.pose.kind=disk", "model.generator.pose_channels=18", "model.spatn.pose_channels=30"],
     ("model.spatn.pose_channels is 30", "18 channels")),
])
def test_pose_channels_must_match_pose_kind(overrides, words):
    assert_rejected(overrides, *words)


def test_pose_channels_default_to_the_pose_kind():
    """A config that only chooses the pose representation gets networks for it."""
    cfg = load_config(None, ["data.pose.kind=disk"])
    assert cfg.model.generator.pose_channels == cfg.model.spatn.pose_channels == 18
    assert load_config(None).model.generator.pose_channels == 30


@pytest.mark.parametrize("overrides, words", [
    (["data.load_size=[0, 88]"], ("data.load_size[0]", "positive integer", "got 0")),
    (["data.load_size=[128]"], ("data.load_size", "[height, width]")),
    (["data.load_size=128"], ("data.load_size", "[height, width]")),
    (["data.load_size=null"], ("data.load_size", "[height, width]")),
    (["data.load_size=[128.0, 88]"], ("data.load_size[0]", "integer")),
    (["data.load_size=[true, 88]"], ("data.load_size[0]", "integer")),
    (["data.image_size=[256, -176]"], ("data.image_size[1]", "got -176")),
    (["data.image_size=[256, 176, 3]"], ("data.image_size", "[height, width]", "or null")),
    (["data.crop=[0, 40, 256]"], ("data.crop", "[top, left, height, width]")),
    (["data.crop=[-1, 40, 256, 176]"], ("data.crop[0]", ">= 0")),
    (["data.crop=[0, -40, 256, 176]"], ("data.crop[1]", ">= 0")),
    (["data.crop=[0, 40, 0, 176]"], ("data.crop[2]", "positive integer")),
    (["data.crop=[0, 40, 256, 0]"], ("data.crop[3]", "positive integer")),
    (["data.root=2024"], ("data.root", "string", "2024")),
    (["data.image_dir=null"], ("data.image_dir", "string")),
    (["data.annotation_file=[a]"], ("data.annotation_file", "string")),
    (["data.pairs_file=1"], ("data.pairs_file", "string")),
    (["data.parsing_dir=false"], ("data.parsing_dir", "string")),
    (["data.flow_dir={}"], ("data.flow_dir", "string")),
    (["data.use_flow=1"], ("data.use_flow", "true or false")),
    (["data.hflip=yes please"], ("data.hflip", "true or false")),
    (["data.pose_in_loader=0"], ("data.pose_in_loader", "true or false")),
    (["data.onehot_in_loader=[]"], ("data.onehot_in_loader", "true or false")),
    (["data.pose=3"], ("data.pose", "mapping")),
])
def test_bad_data_value(overrides, words):
    assert_rejected(overrides, *words)


def test_good_data_values():
    cfg = load_config(None, ["data.load_size=[1, 1]", "data.image_size=[256, 176]", "data.crop=[0, 0, 1, 1]",
                             "data.use_flow=true", "data.hflip=yes", "data.root=/d/{split}"])
    assert cfg.data.load_size == [1, 1] and cfg.data.crop == [0, 0, 1, 1] and cfg.data.hflip is True
    assert load_config(None, ["data.crop=null", "data.image_size=null"]).data.crop is None


@pytest.mark.parametrize("overrides, words", [
    (["train.epochs=0"], ("train.epochs", "positive integer", "got 0")),
    (["train.epochs=2.5"], ("train.epochs", "got 2.5")),
    (["train.epochs=ten"], ("train.epochs", "'ten'")),
    (["train.epochs=[1, 2]"], ("train.epochs", "[1, 2]")),
    (["train.batch_size=0"], ("train.batch_size", "positive integer")),
    (["train.batch_size=true"], ("train.batch_size", "True")),
    (["train.log_every=0"], ("train.log_every", "positive integer")),
    (["train.max_nonfinite=0"], ("train.max_nonfinite", "positive integer")),
    *(([f"train.{name}=-1"], (f"train.{name}", ">= 0", "got -1")) for name in (
        "stage1_epochs", "max_steps", "workers", "plateau_patience", "val_every", "val_pairs",
        "image_every", "save_every", "precise_bn_batches", "seed")),
    (["train.seed=1.0"], ("train.seed", "integer")),
    *(([f"train.{name}=0"], (f"train.{name}", "> 0", "got 0")) for name in ("lr_g", "lr_d", "lr_stage1")),
    (["train.lr_g=abc"], ("train.lr_g", "> 0", "'abc'")),
    (["train.lr_g=[0.1]"], ("train.lr_g", "[0.1]")),
    (["train.lr_g=.inf"], ("train.lr_g", "finite")),
    (["train.lr_d=false"], ("train.lr_d", "False")),
    (["train.min_lr=-1e-6"], ("train.min_lr", ">= 0")),
    (["train.plateau_factor=0"], ("train.plateau_factor", "(0, 1)")),
    (["train.plateau_factor=1"], ("train.plateau_factor", "(0, 1)")),
    (["train.grad_clip=-1"], ("train.grad_clip", ">= 0")),
    (["train.betas=[0.5]"], ("train.betas", "[beta1, beta2]", "[0, 1)")),
    (["train.betas=0.5"], ("train.betas", "[beta1, beta2]")),
    (["train.betas=[0.5, 1.0]"], ("train.betas[1]", "[0, 1)", "got 1.0")),
    (["train.betas=[-0.1, 0.9]"], ("train.betas[0]", "[0, 1)")),
    (["train.betas=[a, 0.9]"], ("train.betas[0]", "'a'")),
    *(([f"train.{name}=1"], (f"train.{name}", "true or false")) for name in (
        "channels_last", "deterministic", "sync_bn", "debug_rank_digest")),
    (["train.vgg_weights=1"], ("train.vgg_weights", "string or null")),
    (["train.out_dir=null"], ("train.out_dir", "string")),
    (["train.losses=3"], ("train.losses", "mapping")),
    (["name=null"], ("name", "string")),
])
def test_bad_train_value(overrides, words):
    assert_rejected(overrides, *words)


def test_good_train_values():
    cfg = load_config(None, [
        "train.epochs=1", "train.batch_size=1", "train.log_every=1", "train.max_nonfinite=1",
        "train.max_steps=0", "train.val_every=0", "train.workers=0", "train.seed=0",
        "train.lr_g=2e-4", "train.lr_d=1", "train.lr_stage1=1.0e-3", "train.min_lr=0",
        "train.plateau_factor=0.999", "train.grad_clip=0", "train.betas=[0, 0.999]",
        "train.vgg_weights=/w/vgg19.pth", "train.deterministic=true",
    ])
    t = cfg.train
    assert t.lr_g == 2e-4 and isinstance(t.lr_g, float)  # "2e-4" (a YAML 1.1 string) converted
    assert t.lr_d == 1.0 and isinstance(t.lr_d, float)  # an int is fine where a float is expected
    assert t.betas == [0.0, 0.999] and t.vgg_weights == "/w/vgg19.pth"


@pytest.mark.parametrize("overrides, words", [
    *(([f"train.losses.{name}=-0.1"], (f"train.losses.{name}", ">= 0", "got -0.1")) for name in (
        "l1", "perceptual", "adversarial", "discriminator", "ce")),
    (["train.losses.l1=.inf"], ("train.losses.l1", "finite")),
    (["train.losses.ce=.nan"], ("train.losses.ce", "finite")),
    (["train.losses.perceptual=one"], ("train.losses.perceptual", "'one'")),
    (["train.losses.adversarial_start_epoch=0"], ("train.losses.adversarial_start_epoch", "positive integer")),
    (["train.losses.adversarial_start_epoch=1.5"], ("train.losses.adversarial_start_epoch", "got 1.5")),
    (["train.losses.typo=1"], ("train.losses", "typo", "adversarial_start_epoch")),
])
def test_bad_loss_weight(overrides, words):
    assert_rejected(overrides, *words)


def test_loss_weights():
    overrides = ["train.losses.l1=0", "train.losses.ce=1", "train.losses.adversarial_start_epoch=1"]
    w = load_config(None, overrides).train.losses
    assert (w.l1, w.ce, w.adversarial_start_epoch) == (0.0, 1.0, 1)
    assert w.adversarial_enabled(0)
    default = LossWeights()
    assert not default.adversarial_enabled(4) and default.adversarial_enabled(5)  # epoch_add_gan=6, 1-based
    assert not LossWeights(adversarial=0).adversarial_enabled(10)
    with pytest.raises(SPGNetError, match=r"train\.losses\.l1"):
        LossWeights(l1=-1)
    with pytest.raises(SPGNetError, match=r"data\.pose\.kind"):
        PoseConfig(kind="bones")


def test_file_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  scheme: paralel\n  lr_g: 2e-4\n")
    message = assert_rejected_file(path)
    assert str(path) in message and "train.scheme: 'paralel' is not one of parallel, sequential, joint" in message
    path.write_text("train:\n  lr_g: 2e-4\n")
    assert load_config(path).train.lr_g == 2e-4


def assert_rejected_file(path):
    with pytest.raises(SPGNetError) as info:
        load_config(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_unknown_keys_still_name_allowed_ones():
    message = assert_rejected(["train.shceme=parallel"], "shceme", "scheme", "config.train")
    assert "unknown key" in message
    assert_rejected(["data.pose.kindd=disk"], "config.data.pose", "kindd", "disk_radius")


def test_config_module_does_not_import_torch():
    src = REPO / "src"
    code = ("import sys; sys.modules['torch'] = None  # any torch import now fails\n"
            "import spgnet.config, spgnet.models.config\n"
            "spgnet.config.load_config(None, ['train.lr_g=2e-4'])\n"
            "loaded = [m for m, mod in sys.modules.items() if mod is not None and m.split('.')[0] == 'torch']\n"
            "assert not loaded, loaded\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- the field types are the schema


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        keys += _leaf_keys(value, dotted) if isinstance(value, dict) else [dotted]
    return keys


def _with(tree: dict, dotted: str, value) -> dict:
    import copy

    tree = copy.deepcopy(tree)
    node = tree
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return tree


DEFAULT_TREE = yaml.safe_load(dump_config(Config()))


@pytest.mark.parametrize("key", _leaf_keys(DEFAULT_TREE))
def test_every_key_refuses_a_value_of_another_type_in_one_line(key):
    """Each leaf of the schema refuses a mapping (no field is a mapping) with one line that
    starts with its dotted key, never a Python error (`data.pose.kind: {a: 1}` used to be
    'TypeError: unhashable type')."""
    with pytest.raises(SPGNetError) as info:
        config_from_dict(_with(DEFAULT_TREE, key, {"a": 1}))
    message = str(info.value)
    assert type(info.value).__name__ == "ConfigValueError" and "\n" not in message, message
    assert message.startswith(f"{key}: ") and "{'a': 1}" in message, message


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("2.5e-4", 2.5e-4), ("1.0e30", 1e30), ("3", 3.0),
                                         ("-2e-1", None), (".5e-3", 5e-4)])
def test_numbers_in_any_notation_for_float_keys(text, value):
    """PyYAML reads `1e-4` and `1.0e30` as strings: float keys take them, from a file and from --set."""
    if value is None:  # well formed but out of range: the range is named
        assert_rejected([f"train.lr_g={text}"], "train.lr_g", "> 0", "got -0.2")
        return
    cfg = load_config(None, [f"train.lr_g={text}", f"train.betas=[{text if value < 1 else 0.5}, 0.999]"])
    assert isinstance(cfg.train.lr_g, float) and cfg.train.lr_g == value


def test_yaml_file_with_scientific_learning_rates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr_g: 1e-4\n  lr_d: 2e-5\n  min_lr: 1.0e-7\n  losses: {l1: 1e1}\n")
    t = load_config(path).train
    assert (t.lr_g, t.lr_d, t.min_lr, t.losses.l1) == (1e-4, 2e-5, 1e-7, 10.0)


@pytest.mark.parametrize("override, words", [
    ("train.batch_size=abc", ("train.batch_size", "positive integer", "'abc'")),
    ("train.batch_size=0", ("train.batch_size", "positive integer", "got 0")),
    ("train.batch_size=-1", ("train.batch_size", "positive integer", "got -1")),
    ("train.max_steps=abc", ("train.max_steps", "integer >= 0", "'abc'")),
    ("train.workers=-1", ("train.workers", "integer >= 0", "got -1")),
    ("train.epochs=1e3", ("train.epochs", "positive integer", "'1e3'")),
    ("data.pose.kind={a: 1}", ("data.pose.kind", "is not one of")),
    ("data.load_size=[64, {a: 1}]", ("data.load_size[1]", "positive integer")),
])
def test_integer_and_choice_keys_refuse_in_one_line(override, words):
    assert_rejected([override], *words)


def test_unknown_keys_of_any_type_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  1: 2\n  zz: 3\n")  # an int key next to a str key used to be a TypeError
    message = assert_rejected_file(path)
    assert "unknown key(s) 1, zz" in message


def test_a_field_without_its_own_check_is_still_typed():
    """The schema check (spgnet.config._check_types) covers a dataclass field whose
    __post_init__ checks nothing: the annotation alone refuses another type."""
    from dataclasses import dataclass

    from spgnet.config import _from_dict

    @dataclass
    class Section:
        count: int = 1
        rate: float = 0.5
        names: list[str] | None = None

    assert _from_dict(Section, {"count": 3, "rate": "1e-3", "names": ["a"]}, "config", "sec") == Section(3, 1e-3, ["a"])
    for key, value, words in (("count", "3", "sec.count: expected an integer, got '3'"),
                              ("count", True, "sec.count: expected an integer, got True"),
                              ("rate", "fast", "sec.rate: expected a number, got 'fast'"),
                              ("names", ["a", 1], "sec.names: expected a list of strings or null, got ['a', 1]")):
        with pytest.raises(SPGNetError, match=re.escape(words)):
            _from_dict(Section, {key: value}, "config", "sec")
