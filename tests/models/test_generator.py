"""Stage-2 generator (docs/design.md §7-8): shapes per variant and size, gradients, variant
structure, feature deformation helpers against hand-computed cases."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from spgnet.models.blocks import expand_by_visibility, pool_flow, pool_visibility
from spgnet.models.config import VARIANTS, GeneratorConfig
from spgnet.models.generator import SPGNetGenerator
from spgnet.models.sean import ACE, BatchNormNoCondition

K = 20


def tiny(**kw) -> GeneratorConfig:
    """The real structure with tiny widths."""
    base = dict(nf=4, max_nf=8, num_scales=3, num_warp_scales=2, style_dim=8, style_nf=4, spade_hidden=4,
                ace_kernel=3, pose_channels=5)
    base.update(kw)
    return GeneratorConfig(**base)


def blocky_labels(b, h, w, cell, seed):
    g = torch.Generator().manual_seed(seed)
    hc, wc = -(-h // cell), -(-w // cell)
    coarse = torch.stack([torch.randperm(hc * wc, generator=g) % K for _ in range(b)]).view(b, hc, wc)
    return coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :h, :w]


def inputs(cfg, b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    src_parsing = F.one_hot(blocky_labels(b, h, w, 4, seed), K).permute(0, 3, 1, 2).float()
    tgt_parsing = F.one_hot(blocky_labels(b, h, w, 8, seed + 1), K).permute(0, 3, 1, 2).float()
    image = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    pose = torch.rand(b, cfg.pose_channels, h, w, generator=g)
    flow = F.interpolate(torch.randn(b, 2, 4, 4, generator=g) * 3, size=(h, w), mode="bilinear")
    vis = blocky_labels(b, h, w, 4, seed + 2)[:, None].float() % 3
    return image, src_parsing, tgt_parsing, pose, flow, vis


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(256, 176), (128, 64), (67, 45)])
def test_output_shape_per_variant_and_size(variant, size):
    torch.manual_seed(0)
    cfg = tiny(variant=variant, num_scales=7, num_warp_scales=5, nf=2, max_nf=4, style_dim=4, spade_hidden=2)
    gen = SPGNetGenerator(cfg).eval()
    with torch.no_grad():
        out = gen(*inputs(cfg, 1, *size))
    assert out.shape == (1, 3, *size)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()


def test_variant_structure():
    def modules(variant, kind):
        return [m for m in SPGNetGenerator(tiny(variant=variant)).modules() if isinstance(m, kind)]

    assert all(m.use_style for m in modules("full", ACE)) and modules("full", ACE)
    assert all(not m.use_style for m in modules("spade", ACE)) and modules("spade", ACE)
    assert not modules("baseline", ACE) and modules("baseline", BatchNormNoCondition)
    for variant, style, fuse in [("full", True, True), ("sean-only", True, False), ("spade", False, True),
                                 ("baseline-s", False, True), ("baseline", False, True)]:
        gen = SPGNetGenerator(tiny(variant=variant))
        assert (gen.style_encoder is not None) == style
        assert (gen.appearance_encoder.scales[0].fuse is not None) == fuse
        assert gen.appearance_encoder.scales[2].fuse is None  # beyond num_warp_scales
    stem = SPGNetGenerator(tiny(variant="baseline-s")).pose_encoder.stem[0]
    assert stem.in_channels == 5 + K
    assert SPGNetGenerator(tiny(num_warp_scales=0)).appearance_encoder.scales[0].fuse is None


def test_upsample_norm_position():
    # decoder[0] upsamples width(1) = 8 channels to width(0) = 4
    after = SPGNetGenerator(tiny(upsample_norm="after")).decoder[0]  # official Market
    assert len(after.up) == 3 and after.norm.channels == 4  # no BatchNorm; ACE on the upsampled map
    before = SPGNetGenerator(tiny(upsample_norm="before")).decoder[0]  # official DeepFashion
    assert len(before.up) == 4 and before.norm.channels == 8  # ACE on the coarse input, then BatchNorm


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_gradient(variant):
    torch.manual_seed(0)
    # style_dim 32: with fewer units, ReLU(fc_k(code)) can be all zero for some class k
    # (codes are small at init, so the sign of the bias decides), leaving fc_k without gradient.
    cfg = tiny(variant=variant, style_dim=32)
    gen = SPGNetGenerator(cfg).train()
    # 64x64 with 3 scales: the coarsest ACE sees 8x8 cells, so every class is present at every scale.
    out = gen(*inputs(cfg, 2, 64, 64))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        if name.endswith("style_fc_weight") or name.endswith("style_fc_bias"):
            per_class = p.grad.flatten(1).abs().sum(1)
            assert (per_class > 0).all(), f"{name}: classes without gradient {torch.nonzero(per_class == 0)}"


def test_sean_only_ignores_flow_and_flow_changes_full():
    torch.manual_seed(0)
    image, sp, tp, pose, flow, vis = inputs(tiny(), 2, 32, 32)
    for variant, should_change in [("sean-only", False), ("full", True)]:
        gen = SPGNetGenerator(tiny(variant=variant)).eval()
        with torch.no_grad():
            a = gen(image, sp, tp, pose, flow, vis)
            b = gen(image, sp, tp, pose, flow + 2.0, vis)
        assert (not torch.equal(a, b)) == should_change, variant


def test_deformation_feeds_skips_only():
    torch.manual_seed(0)
    cfg = tiny()
    enc = SPGNetGenerator(cfg).appearance_encoder.eval()
    image, _, _, _, flow, vis = inputs(cfg, 2, 32, 32)
    with torch.no_grad():
        bottom_a, skips_a = enc(image, flow, vis)
        bottom_b, skips_b = enc(image, flow * -1.5, vis)
        bottom_none, skips_none = enc(image)
    assert torch.equal(bottom_a, bottom_b) and torch.equal(bottom_a, bottom_none)
    assert not torch.equal(skips_a[0][0], skips_b[0][0]) and not torch.equal(skips_a[1][1], skips_b[1][1])
    assert torch.equal(skips_a[2][0], skips_none[2][0])  # scale 2 is beyond num_warp_scales


def test_skip_connections_follow_the_official_order():
    """Decoder block i of scale l gets cat(pose block i output, appearance skip i) of scale l
    (the official code pops the skips in reverse: block 1 first, then block 0)."""
    torch.manual_seed(0)
    cfg = tiny()
    gen = SPGNetGenerator(cfg).eval()
    produced, consumed = {}, {}

    def save_output(key):
        def hook(module, args, output):
            produced[key] = output
        return hook

    def save_skip(key):
        def hook(module, args):  # SPGBlock.forward(x, a, parsing, codes)
            consumed[key] = args[1]
        return hook

    for level in range(cfg.num_scales):
        p_scale, a_scale = gen.pose_encoder.scales[level], gen.appearance_encoder.scales[level]
        for i in range(cfg.num_res_blocks):
            p_scale.res[i].register_forward_hook(save_output(("pose", level, i)))
            source = a_scale.fuse[i] if a_scale.fuse is not None else a_scale.res[i]
            source.register_forward_hook(save_output(("appearance", level, i)))
            gen.decoder[level].blocks[i].register_forward_pre_hook(save_skip((level, i)))
    with torch.no_grad():
        gen(*inputs(cfg, 1, 32, 32))
    for (level, i), skip in consumed.items():
        expected = torch.cat((produced[("pose", level, i)], produced[("appearance", level, i)]), dim=1)
        assert torch.equal(skip, expected), (level, i)
    assert len(consumed) == cfg.num_scales * cfg.num_res_blocks


def test_input_shapes_are_checked():
    cfg = tiny()
    gen = SPGNetGenerator(cfg)
    image, sp, tp, pose, flow, vis = inputs(cfg, 1, 32, 32)
    with pytest.raises(ValueError, match="tgt_pose"):
        gen(image, sp, tp, pose[:, :3], flow, vis)
    with pytest.raises(ValueError, match="vis"):
        gen(image, sp, tp, pose, flow, None)
    with pytest.raises(ValueError, match="src_parsing"):
        gen(image, sp[..., :16], tp, pose, flow, vis)


def test_padding_is_centred_and_cropped():
    gen = SPGNetGenerator(tiny(num_scales=4))
    assert gen._padding(67, 45) == (1, 2, 6, 7)  # (left, right, top, bottom): W 45 -> 48, H 67 -> 80
    assert gen._padding(64, 32) == (0, 0, 0, 0)


def test_pool_flow_and_visibility_hand_computed():
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0] = torch.tensor([[4.0, 0, 8, 8], [0, 0, 8, 8], [2, 2, 0, 0], [2, 2, 0, 0]])
    flow[0, 1] = 6.0
    pooled = pool_flow(flow, 1)  # mean over 2x2 cells, halved: pixels of the coarser grid
    torch.testing.assert_close(pooled[0, 0], torch.tensor([[0.5, 4.0], [1.0, 0.0]]))
    torch.testing.assert_close(pooled[0, 1], torch.full((2, 2), 3.0))
    assert torch.equal(pool_flow(flow, 0), flow)
    vis = torch.tensor([[2.0, 1, 2, 2], [2, 2, 2, 2], [0, 1, 1, 1], [2, 2, 1, 2]])[None, None]
    # visible beats invisible beats background
    assert pool_visibility(vis, 1)[0, 0].tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert pool_visibility(vis, 2)[0, 0].tolist() == [[0.0]]


def test_expand_by_visibility():
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    vis = torch.tensor([[0.0, 1], [2, 0]])[None, None]
    out = expand_by_visibility(x, vis)
    assert out.shape == (1, 4, 2, 2)
    assert out[0, 0].tolist() == [[1, 0], [0, 4]] and out[0, 2].tolist() == [[0, 2], [0, 0]]


def test_config_is_validated():
    from spgnet import SPGNetError

    with pytest.raises(SPGNetError, match="variant"):
        GeneratorConfig(variant="sean")
    with pytest.raises(SPGNetError, match="num_warp_scales"):
        GeneratorConfig(num_scales=4)  # default num_warp_scales 5 > 4
    with pytest.raises(SPGNetError, match="ace_kernel"):
        dataclasses.replace(GeneratorConfig(), ace_kernel=4)
