"""``spgnet convert-official``: the official release's weights -> our checkpoint -> the official
files again, on random weights shaped exactly like the official files (the name/shape
listings in tests/assets); the converted checkpoint's config and loading; one-line errors
naming the file and the official tensor; fp16 and DataParallel-prefixed inputs."""

from __future__ import annotations

import json

import pytest
import torch

from spgnet import SPGNetError
from spgnet.apps.convert_official import convert_official, export_official, official_generator_shapes
from spgnet.cli import main
from spgnet.config import config_from_dict
from spgnet.models.config import FlowNetConfig, model_preset
from spgnet.models.generator import SPGNetGenerator
from spgnet.models.official import load_official_generator_state, official_state_dict_to_ours
from spgnet.models.official_flow import OfficialFlowNet, read_train_opt
from spgnet.pipeline import build_generator, load_pipeline
from spgnet.utils.checkpoint import load_checkpoint, read_checkpoint_config, read_checkpoint_info, read_model_state
from spgnet.utils.checkpoint import save_checkpoint

from helpers import FLOW, random_flow_state, random_official_state, read_tsv, tiny_config, train_opt, write_flow_dir


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> dict:
    """The official Market generator file (random weights) and a tiny flow-network folder,
    converted once into a checkpoint with the flow network."""
    root = tmp_path_factory.mktemp("official")
    state = random_official_state("market", 0)
    generator = root / "checkpoints" / "market" / "latest_net_netG.pth"
    generator.parent.mkdir(parents=True)
    torch.save(state, generator)
    flow_state = random_flow_state(FLOW, 1)
    flow_dir = write_flow_dir(root / "checkpoints" / "FlowReg_market", flow_state, train_opt())
    ckpt = convert_official(generator, "market", root / "ckpt", flow_dir=flow_dir, data_root=root / "data")
    return {"root": root, "state": state, "generator": generator, "flow_state": flow_state, "flow_dir": flow_dir,
            "ckpt": ckpt}


def test_round_trip_is_bit_exact(market, tmp_path):
    written = export_official(market["ckpt"], tmp_path / "exported")
    assert set(written) == {"generator", "flow_weights", "train_opt"}
    assert written["generator"] == tmp_path / "exported" / "latest_net_netG.pth"
    back = torch.load(written["generator"], map_location="cpu", weights_only=True)
    tsv = read_tsv("market")
    assert set(back) == set(tsv)
    assert {n: tuple(t.shape) for n, t in back.items()} == tsv
    for name, value in market["state"].items():
        assert back[name].dtype == value.dtype and torch.equal(back[name], value), name

    flow = torch.load(written["flow_weights"], map_location="cpu", weights_only=True)
    assert list(flow) == list(OfficialFlowNet(FLOW).state_dict())  # the official names, in the official order
    for name, value in market["flow_state"].items():
        assert flow[name].dtype == value.dtype and torch.equal(flow[name], value), name
    opt = json.loads(written["train_opt"].read_text())
    for key, value in {"which_model": "unet", "input_type1": "joint", "input_type2": "joint", "joint_nc": 18,
                       "nf": FLOW.nf, "start_scale": FLOW.start_scale, "num_scale": FLOW.num_scale,
                       "norm": FLOW.norm, "max_nf": 128}.items():
        assert opt[key] == value, key
    assert read_train_opt(written["train_opt"]) == FLOW
    OfficialFlowNet(read_train_opt(written["train_opt"])).load_state_dict(flow, strict=True)

    # and the exported files convert again into the very same checkpoint tensors
    again = convert_official(written["generator"], "market", tmp_path / "again",
                             flow_dir=written["flow_weights"].parent)
    for model in ("generator", "flow"):
        first, second = read_model_state(market["ckpt"], model), read_model_state(again, model)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[n], second[n]) for n in first), model


def test_converted_checkpoint_loads_as_the_official_model(market):
    ckpt = market["ckpt"]
    info = read_checkpoint_info(ckpt)
    assert set(info["models"]) == {"generator", "flow"} and not info["ema"]
    cfg = config_from_dict(read_checkpoint_config(ckpt))  # validated on load
    preset = model_preset("official-market")
    assert cfg.model.generator.noise_layout == "official"
    assert {k: v for k, v in vars(cfg.model.generator).items() if k != "noise_layout"} == \
        {k: v for k, v in vars(preset.generator).items() if k != "noise_layout"}
    assert (cfg.data.pose.kind, cfg.data.pose.disk_radius) == ("disk", 4.0)
    assert cfg.data.load_size == cfg.data.image_size == [128, 64]
    assert cfg.data.root == str(market["root"] / "data")
    assert cfg.train.flow == "official"
    assert cfg.model.flow_net == FlowNetConfig(nf=2, start_scale=2, num_scale=2, norm="batch", disk_radius=4.0)

    net = load_pipeline(ckpt)
    assert net.stage1 is None and net.flow_kind == "official" and not net.training
    assert net.generator.cfg.noise_layout == "official"
    ours = official_state_dict_to_ours(market["state"])
    generator_state = net.generator.state_dict()
    assert generator_state.keys() == ours.keys()
    assert all(torch.equal(generator_state[n], ours[n]) for n in ours)
    flow_state = net.flow_net.state_dict()
    assert flow_state.keys() == market["flow_state"].keys()
    assert all(torch.equal(flow_state[n], market["flow_state"][n]) for n in flow_state)

    extra = load_checkpoint(ckpt, models={}, restore_rng=False)["extra"]["converted_from"]
    assert extra["dataset"] == "market"
    assert extra["generator"]["path"] == str(market["generator"].resolve())
    assert extra["flow_weights"]["path"] == str((market["flow_dir"] / "best_net_netF.pth").resolve())
    assert len(extra["generator"]["sha256"]) == 64


def test_cli_converts_a_saved_state_dict_and_back(market, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["convert-official", "--generator", str(market["generator"]), "--dataset", "market",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "part-affine" in printed
    cfg = config_from_dict(read_checkpoint_config(out))
    assert cfg.train.flow == "part-affine" and cfg.data.root == "data/official-market"
    assert set(read_checkpoint_info(out)["models"]) == {"generator"}
    assert load_pipeline(out).flow_net is None

    exported = tmp_path / "exported"
    assert main(["convert-official", "--to-official", str(exported), "--checkpoint", str(out)]) == 0
    assert sorted(p.name for p in exported.iterdir()) == ["latest_net_netG.pth"]  # no flow network: no FlowReg/
    back = torch.load(exported / "latest_net_netG.pth", weights_only=True)
    assert all(torch.equal(back[n], v) for n, v in market["state"].items())


# --- bad inputs: exit 2, one line naming the file and the official tensor ---------------------------------


def without(state, name):
    assert name in state
    return {k: v for k, v in state.items() if k != name}


def deepfashion_shaped() -> dict[str, torch.Tensor]:
    """The official DeepFashion generator's names and shapes at no memory cost (stride-0 views)."""
    return {n: (torch.zeros((), dtype=torch.long) if n.endswith("num_batches_tracked")
                else torch.zeros(1).expand(s)) for n, s in read_tsv("deepfashion").items()}


FC_MU19 = "dec_0_res_0.conv_norm.fc_mu19.weight"


@pytest.mark.parametrize("case", ["missing-file", "not-a-state-dict", "pickled-object", "missing-tensor",
                                  "unexpected-tensor", "mis-shaped", "market-as-deepfashion",
                                  "deepfashion-as-market", "flow-does-not-match-its-options", "no-train-opt",
                                  "flow-too-deep-for-the-image-size", "flow-weights-as-generator"])
def test_bad_input_is_one_line(market, tmp_path, capsys, case):
    state = market["state"]
    path = tmp_path / "latest_net_netG.pth"
    dataset, flow_dir = "market", None
    expect: list[str] = [str(path)]
    if case == "missing-file":
        expect += ["not found"]
    elif case == "not-a-state-dict":
        torch.save([1, 2, 3], path)
        expect += ["not a state dict"]
    elif case == "pickled-object":
        torch.save({"opt": argparse_namespace()}, path)
        expect += ["refusing"]
    elif case == "missing-tensor":  # the 20th class of an ACE
        torch.save(without(state, FC_MU19), path)
        expect += [f"missing official tensor {FC_MU19}"]
    elif case == "unexpected-tensor":
        torch.save({**state, "dec_9_bogus.weight": torch.zeros(3)}, path)
        expect += ["unexpected tensor dec_9_bogus.weight"]
    elif case == "mis-shaped":
        torch.save({**state, "dec_output.1.weight": torch.zeros(3, 32, 5, 5)}, path)
        expect += ["dec_output.1.weight", "(3, 32, 5, 5)", str(tuple(read_tsv("market")["dec_output.1.weight"]))]
    elif case == "market-as-deepfashion":
        path, dataset, expect = market["generator"], "deepfashion", [str(market["generator"]),
                                                                    "looks like the market generator",
                                                                    "--dataset market"]
    elif case == "deepfashion-as-market":
        torch.save(deepfashion_shaped(), path)
        expect += ["looks like the deepfashion generator", "--dataset deepfashion"]
    elif case in ("flow-does-not-match-its-options", "no-train-opt", "flow-weights-as-generator"):
        path = market["generator"]
        flow_dir = write_flow_dir(tmp_path / "FlowReg_market", random_flow_state(FLOW, 2), train_opt(nf=4))
        pth = flow_dir / "best_net_netF.pth"
        if case == "flow-does-not-match-its-options":
            expect = [str(pth), "conv_downsample.0.weight", str(flow_dir / "train_opt.json")]
        elif case == "no-train-opt":
            (flow_dir / "train_opt.json").unlink()
            expect = [str(flow_dir / "train_opt.json"), "not found"]
        elif case == "flow-too-deep-for-the-image-size":  # 6 levels: 128x64 is not a multiple of 2 * 2**6
            deep = FlowNetConfig(nf=2, start_scale=2, num_scale=6, norm="batch")
            write_flow_dir(flow_dir, random_flow_state(deep, 3), train_opt(num_scale=6))
            expect = [str(flow_dir / "train_opt.json"), "128x64", "multiples of 128"]
        else:
            path, flow_dir = pth, None
            expect = [str(pth), "looks like the flow network", "--flow-dir"]
    args = ["convert-official", "--generator", str(path), "--dataset", dataset, "--out", str(tmp_path / "ckpt")]
    if flow_dir is not None:
        args += ["--flow-dir", str(flow_dir)]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("spgnet convert-official: error: "), err
    for text in expect:
        assert text in err, (text, err)
    assert not (tmp_path / "ckpt").exists()


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=1)


def test_export_refuses_a_generator_that_is_not_official(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "data")  # 30 pose channels, 3 scales: not an official structure
    ckpt = save_checkpoint(tmp_path / "tiny", models={"generator": build_generator(cfg)}, config_dict=cfg)
    assert main(["convert-official", "--to-official", str(tmp_path / "out"), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ckpt) in err and "not an official SPGNet structure" in err, err
    assert not (tmp_path / "out").exists()


def test_cli_arguments_are_checked(market, tmp_path, capsys):
    assert main(["convert-official", "--to-official", str(tmp_path / "x")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["convert-official", "--generator", str(market["generator"]), "--out", str(tmp_path / "c")]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["convert-official", "--to-official", str(tmp_path / "x"), "--checkpoint", str(market["ckpt"]),
                 "--dataset", "market"]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_official_mapping_names_the_missing_class_tensor():
    """load_official_generator_state: the 20th class's fc_mu missing, or a 21st present, is named
    as the official tensor (not as a shape error of our stacked parameter)."""
    tensors = {n: torch.empty(s, device="meta") for n, s in read_tsv("deepfashion").items()}
    with torch.device("meta"):
        generator = SPGNetGenerator(model_preset("official-deepfashion").generator)
    with pytest.raises(SPGNetError, match=r"missing dec_0_res_0\.conv_norm\.fc_mu19\.weight"):
        load_official_generator_state(generator, without(tensors, FC_MU19))
    extra = {**tensors, "dec_0_res_0.conv_norm.fc_mu20.bias": torch.empty(128, device="meta")}
    with pytest.raises(SPGNetError, match=r"unexpected dec_0_res_0\.conv_norm\.fc_mu20\.bias"):
        load_official_generator_state(generator, extra)
    odd = {**tensors, "dec_0_res_0.conv_norm.fc_mu3.weight": torch.empty(128, 64, device="meta")}
    with pytest.raises(SPGNetError, match=r"dec_0_res_0\.conv_norm\.fc_mu3\.weight has shape \(128, 64\)"):
        load_official_generator_state(generator, odd)
    assert official_generator_shapes("deepfashion") == read_tsv("deepfashion")


# --- fp16 / bf16 and the DataParallel prefix --------------------------------------------------------------


@pytest.mark.parametrize("variant", ["module-prefix", "fp16", "bf16"])
def test_half_precision_and_prefix_convert_to_the_same_tensors(market, tmp_path, variant):
    state = market["state"]
    if variant == "module-prefix":
        saved, cast = {f"module.{k}": v for k, v in state.items()}, None
    else:
        cast = torch.float16 if variant == "fp16" else torch.bfloat16
        saved = {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "latest_net_netG.pth"
    torch.save(saved, path)
    ckpt = convert_official(path, "market", tmp_path / "ckpt")
    got = read_model_state(ckpt, "generator")
    plain = read_model_state(market["ckpt"], "generator")  # from the fp32 file without prefix
    assert got.keys() == plain.keys()
    for name, value in plain.items():
        want = value.to(cast).float() if (cast is not None and value.is_floating_point()) else value
        assert got[name].dtype == value.dtype and torch.equal(got[name], want), name
