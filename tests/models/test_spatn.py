"""Stage 1 SPATN (docs/design.md §6): shapes at any size, parameter counts against a hand count of
the PATN structure, gradients everywhere, and the attention gating of the PAT block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.models.config import SPATNConfig
from spgnet.models.spatn import SPATN, PATBlock, predict_parsing


def _inputs(b: int, source_channels: int, pose_channels: int, h: int, w: int):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, source_channels, h, w, generator=g), torch.randn(b, pose_channels, h, w, generator=g),
            torch.randn(b, pose_channels, h, w, generator=g))


def hand_count(dim: int, blocks: int, pose_ch: int, source_ch: int, classes: int, norm: str) -> int:
    """Trainable parameters of the PATN structure, counted layer by layer from docs/design.md §6."""
    bn = norm == "batch"

    def conv(cin, cout, k, bias):
        return cin * cout * k * k + (cout if bias else 0)

    def normed(c):  # a conv followed by a norm: BN has 2c affine parameters, IN none but the conv a bias
        return 2 * c if bn else c

    def stem(cin):
        return (conv(cin, dim, 7, False) + normed(dim)
                + conv(dim, 2 * dim, 3, False) + normed(2 * dim)
                + conv(2 * dim, 4 * dim, 3, False) + normed(4 * dim))

    d = 4 * dim
    image_branch = 2 * (conv(d, d, 3, False) + normed(d))
    pose_first = conv(d, d, 3, False) + normed(d) + conv(d, d, 3, not bn)
    pose_later = conv(2 * d, 2 * d, 3, False) + normed(2 * d) + conv(2 * d, d, 3, not bn)
    pat = blocks * image_branch + pose_first + (blocks - 1) * pose_later
    decoder = (conv(d, d // 2, 3, False) + normed(d // 2) + conv(d // 2, dim, 3, False) + normed(dim)
               + conv(dim, classes, 7, True))
    return stem(source_ch) + stem(2 * pose_ch) + pat + decoder


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_parameter_count_matches_hand_count_tiny(norm):
    m = SPATN(SPATNConfig(dim=4, num_blocks=3, pose_channels=5, input="parsing", norm=norm), num_classes=20)
    assert n_params(m) == hand_count(4, 3, 5, 20, 20, norm)
    m = SPATN(SPATNConfig(dim=4, num_blocks=1, pose_channels=5, input="image", norm=norm))
    assert n_params(m) == hand_count(4, 1, 5, 3, 20, norm)


def test_parameter_count_of_the_paper_structure():
    # dim 64, 9 blocks, 30 pose channels: 41.5 M (PATN reports 41.36 M with its 3+36 inputs)
    m = SPATN(SPATNConfig())
    assert n_params(m) == hand_count(64, 9, 30, 20, 20, "batch") == 41_547_668


@pytest.mark.parametrize("size", [(256, 176), (128, 64), (37, 29)])
@pytest.mark.parametrize("kind,channels", [("parsing", 20), ("image", 3)])
def test_output_shape_any_size(size, kind, channels):
    m = SPATN(SPATNConfig(dim=8, num_blocks=2, pose_channels=30, input=kind)).eval()
    with torch.no_grad():
        out = m(*_inputs(2, channels, 30, *size))
    assert out.shape == (2, 20, *size)
    assert torch.isfinite(out).all()
    labels = predict_parsing(out)
    assert labels.shape == (2, *size) and labels.dtype == torch.int64


def test_every_parameter_gets_a_gradient():
    m = SPATN(SPATNConfig(dim=8, num_blocks=3, pose_channels=18, input="parsing"))
    src, ps, pt = _inputs(2, 20, 18, 36, 28)
    target = torch.randint(0, 20, (2, 36, 28))
    F.cross_entropy(m(src, ps, pt), target).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_odd_size_crops_the_padded_prediction():
    # the crop keeps the top-left H×W of the padded input: a 37×29 input equals the
    # top-left corner of the 40×32 replicate-padded one
    m = SPATN(SPATNConfig(dim=8, num_blocks=1, pose_channels=4, norm="instance")).eval()
    src, ps, pt = _inputs(1, 20, 4, 37, 29)
    padded = [F.pad(t, (0, 3, 0, 3), mode="replicate") for t in (src, ps, pt)]
    with torch.no_grad():
        assert torch.allclose(m(src, ps, pt), m(*padded)[:, :, :37, :29], atol=1e-6)


def _pat_block(dim=6, first=False):
    torch.manual_seed(1)
    block = PATBlock(dim, norm="instance", first=first).eval()
    x = torch.randn(2, dim, 9, 7)
    pose = torch.randn(2, dim if first else 2 * dim, 9, 7)
    return block, x, pose


def test_pat_block_is_identity_when_attention_is_closed():
    block, x, pose = _pat_block()
    with torch.no_grad():
        block.pose_branch[-1].bias.fill_(-1e4)  # sigmoid(pose branch) = 0 everywhere
        out, next_pose = block(x, pose)
    assert torch.equal(out, x)
    assert next_pose.shape == (2, 12, 9, 7)
    assert torch.equal(next_pose[:, 6:], out)  # next pose input = cat(pose branch, out)


def test_pat_block_adds_the_image_branch_when_attention_is_open():
    block, x, pose = _pat_block(first=True)
    with torch.no_grad():
        block.pose_branch[-1].weight.zero_()
        block.pose_branch[-1].bias.fill_(1e4)  # attention 1
        out, next_pose = block(x, pose)
        expected = x + block.image_branch(x)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(next_pose[:, :6], torch.full_like(out, 1e4))


def test_pat_block_gates_with_the_sigmoid_of_the_pose_branch():
    block, x, pose = _pat_block()
    with torch.no_grad():
        out, _ = block(x, pose)
        # reference written out from PATN's block: x + conv-stream(x) * sigmoid(pose-stream(pose))
        ref = x + block.image_branch(x) / (1 + torch.exp(-block.pose_branch(pose)))
    assert torch.allclose(out, ref, atol=1e-6)


def test_zero_image_branch_gives_identity():
    block, x, pose = _pat_block()
    with torch.no_grad():
        block.image_branch[-1] = torch.nn.BatchNorm2d(6).eval()
        block.image_branch[-1].weight.zero_()
        block.image_branch[-1].bias.zero_()
        out, _ = block(x, pose)
    assert torch.equal(out, x)


def test_bad_arguments_and_inputs():
    with pytest.raises(SPGNetError, match="input"):
        SPATN(SPATNConfig(input="depth"))
    with pytest.raises(SPGNetError, match="norm"):
        SPATN(SPATNConfig(norm="group"))
    m = SPATN(SPATNConfig(dim=4, num_blocks=1, pose_channels=30))
    src, ps, pt = _inputs(1, 3, 30, 16, 16)  # an image where the one-hot parsing is expected
    with pytest.raises(SPGNetError, match="source"):
        m(src, ps, pt)
    with pytest.raises(SPGNetError, match="predict_parsing"):
        predict_parsing(torch.zeros(20, 4, 4))


def test_predict_parsing_is_the_argmax():
    logits = torch.zeros(1, 20, 2, 2)
    logits[0, 13, 0, 0] = 1.0
    logits[0, 5, 1, 1] = 2.0
    logits[0, 19, 0, 1] = 0.5
    assert predict_parsing(logits).tolist() == [[[13, 19], [0, 5]]]
