"""Official SPGNet generator weights <-> ours: parameter counts and every name/shape of the
official state dicts (reference TSVs dumped from the official code), value round trips,
and the spectral-norm conversion against torch's original implementation."""

import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.models.config import GeneratorConfig, model_preset
from spgnet.models.generator import SPGNetGenerator
from spgnet.utils.torch_utils import count_parameters
from spgnet.models.official import (load_official_generator_state, official_state_dict_to_ours,
                                    ours_state_dict_to_official)

from helpers import read_official_tsv

# Names and shapes of the official generators' state dicts, dumped from the official code.
PRESETS = {"official-deepfashion": ("deepfashion", 87_795_177), "official-market": ("market", 30_914_805)}


@functools.lru_cache(maxsize=None)
def meta_generator(preset):
    with torch.device("meta"):
        return SPGNetGenerator(model_preset(preset).generator)


@pytest.mark.parametrize("preset", PRESETS)
def test_official_parameter_count(preset):
    filename, expected = PRESETS[preset]
    total, _ = read_official_tsv(filename)
    assert total == expected
    assert count_parameters(meta_generator(preset)) == expected


@pytest.mark.parametrize("preset", PRESETS)
def test_mapping_covers_every_official_name_and_shape(preset):
    _, shapes = read_official_tsv(PRESETS[preset][0])
    gen = meta_generator(preset)
    official = ours_state_dict_to_official(gen.state_dict())
    assert set(official) == set(shapes)
    assert {n: tuple(t.shape) for n, t in official.items()} == shapes
    # and back: official tensors with the TSV shapes load into our model
    tensors = {n: torch.empty(s, device="meta") for n, s in shapes.items()}
    ours = official_state_dict_to_ours(tensors)
    assert {n: t.shape for n, t in ours.items()} == {n: t.shape for n, t in gen.state_dict().items()}
    load_official_generator_state(gen, tensors)


def small_official_like():
    """Official structure (full variant, 18 pose channels) at tiny widths."""
    cfg = dataclasses.replace(model_preset("official-deepfashion").generator, nf=4, max_nf=8, num_scales=3,
                              num_warp_scales=2, style_dim=8, style_nf=4, spade_hidden=4, ace_kernel=3)
    return cfg


def randomized(gen):
    with torch.no_grad():
        for p in gen.parameters():
            p.normal_(0, 0.3)
        for name, b in gen.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith("_u") or name.endswith("_v"):
                b.normal_()
    return gen


def test_value_round_trip_and_same_outputs():
    torch.manual_seed(0)
    cfg = small_official_like()
    a = randomized(SPGNetGenerator(cfg)).eval()
    official = ours_state_dict_to_official(a.state_dict())
    back = official_state_dict_to_ours(official)
    assert back.keys() == a.state_dict().keys()
    for name, value in a.state_dict().items():
        assert torch.equal(back[name], value), name
    # the unused SPADE BatchNorm buffers of the official ACE are written at their initial values
    assert not official["dec_0_upsample_norm.Spade.param_free_norm.running_mean"].any()
    assert (official["dec_0_res_1.conv_norm.Spade.param_free_norm.running_var"] == 1).all()

    b = SPGNetGenerator(cfg).eval()
    load_official_generator_state(b, {"module." + k: v for k, v in official.items()})  # DataParallel prefix
    h, w = 32, 24
    parsing = F.one_hot(torch.randint(0, 20, (2, h, w)), 20).permute(0, 3, 1, 2).float()
    args = (torch.rand(2, 3, h, w) * 2 - 1, parsing, parsing.flip(-1), torch.rand(2, 18, h, w),
            torch.randn(2, 2, h, w), torch.randint(0, 3, (2, 1, h, w)).float())
    with torch.no_grad():
        torch.manual_seed(1)
        out_a = a(*args)
        torch.manual_seed(1)
        out_b = b(*args)
    assert torch.equal(out_a, out_b)


def test_fc_mu_slices_are_the_official_linear_layers():
    torch.manual_seed(0)
    gen = randomized(SPGNetGenerator(small_official_like()))
    official = ours_state_dict_to_official(gen.state_dict())
    ace = gen.decoder[1].blocks[0].norm_a
    codes = torch.randn(3, 20, 8)
    expected = torch.stack([F.relu(F.linear(codes[:, k], official[f"dec_1_res_0.conv_a_norm.fc_mu{k}.weight"],
                                            official[f"dec_1_res_0.conv_a_norm.fc_mu{k}.bias"]))
                            for k in range(20)], dim=1)
    torch.testing.assert_close(ace.class_styles(codes), expected)


def test_spectral_norm_matches_torch_original_implementation():
    """Official checkpoints come from torch.nn.utils.spectral_norm (weight_orig/_u/_v)."""
    torch.manual_seed(0)
    old = torch.nn.utils.spectral_norm(torch.nn.Conv2d(8, 4, 3, padding=1, bias=False))
    for _ in range(3):  # a few power iterations so that u, v are not at their initial values
        old(torch.randn(1, 8, 5, 5))
    old.eval()
    gen = SPGNetGenerator(small_official_like()).eval()
    block = gen.decoder[0].blocks[0]  # conv: 8 -> 4, 3x3
    sd = old.state_dict()
    official = {f"dec_0_res_0.conv.weight_{s}": sd[f"weight_{s}"] for s in ("orig", "u", "v")}
    ours = official_state_dict_to_ours(official)
    block.load_state_dict({k.removeprefix("decoder.0.blocks.0."): v for k, v in ours.items()}, strict=False)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block.conv(x), old(x))


def test_bad_official_state_dicts_are_named():
    gen = SPGNetGenerator(small_official_like())
    official = ours_state_dict_to_official(gen.state_dict())
    with pytest.raises(SPGNetError, match="dec_9_bogus"):
        official_state_dict_to_ours({**official, "dec_9_bogus.weight": torch.zeros(1)})
    partial = {k: v for k, v in official.items() if k != "dec_0_res_0.conv_norm.fc_mu7.weight"}
    with pytest.raises(SPGNetError, match=r"missing dec_0_res_0\.conv_norm\.fc_mu7\.weight$"):
        official_state_dict_to_ours(partial)
    with pytest.raises(SPGNetError, match="missing"):
        load_official_generator_state(gen, {k: v for k, v in official.items() if not k.startswith("dec_output")})
    market_like = SPGNetGenerator(dataclasses.replace(small_official_like(), ace_kernel=5))
    with pytest.raises(SPGNetError, match="shape"):
        load_official_generator_state(market_like, official)
    with pytest.raises(SPGNetError, match="no counterpart"):
        ours_state_dict_to_official(SPGNetGenerator(GeneratorConfig(
            variant="baseline", nf=4, max_nf=8, num_scales=2, num_warp_scales=1)).state_dict())
