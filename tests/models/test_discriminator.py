"""PatchGAN discriminator (docs/design.md §9): output size and receptive field against the
convolution arithmetic, parameter count by hand, spectral norm, input checks."""

from __future__ import annotations

import pytest
import torch

from spgnet import SPGNetError
from spgnet.models.config import DiscriminatorConfig
from spgnet.models.discriminator import NLayerDiscriminator

# pix2pix NLayerDiscriminator, n_layers = 3: (kernel, stride, padding) of each conv
LAYERS = [(4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 1, 1), (4, 1, 1)]


def conv_out(size: int) -> int:
    for k, s, p in LAYERS:
        size = (size + 2 * p - k) // s + 1
    return size


def receptive_field() -> int:
    r, jump = 1, 1
    for k, s, _ in LAYERS:
        r += (k - 1) * jump
        jump *= s
    return r


def test_output_size_by_conv_arithmetic():
    assert (conv_out(256), conv_out(176)) == (30, 20)  # the standard PatchGAN on DeepFashion
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=8), in_channels=3 + 3 + 30).eval()
    for h, w in [(256, 176), (128, 64), (70, 70)]:
        with torch.no_grad():
            out = d(torch.randn(2, 3, h, w), torch.randn(2, 3, h, w), torch.randn(2, 30, h, w))
        assert out.shape == (2, 1, conv_out(h), conv_out(w))


def test_receptive_field_is_70_pixels():
    assert receptive_field() == 70
    torch.manual_seed(0)
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=4, norm="none"), in_channels=4).eval()
    x = torch.randn(1, 4, 96, 96, requires_grad=True)
    out = d(x)
    i, j = 5, 6  # an output patch whose field lies inside the input
    out[0, 0, i, j].backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero().flatten()
    # the field of output (i, j) starts at i * 8 - (padding 1 * jumps 1+2+4+8+8 = 23)
    assert (rows.min().item(), rows.max().item()) == (i * 8 - 23, i * 8 - 23 + 69)
    assert (cols.min().item(), cols.max().item()) == (j * 8 - 23, j * 8 - 23 + 69)


def hand_count(cin: int, ndf: int, norm: str) -> int:
    bn = norm == "batch"
    total = cin * ndf * 16 + ndf  # first conv: bias, no norm
    widths = [ndf, 2 * ndf, 4 * ndf, 8 * ndf]
    for a, b in zip(widths, widths[1:]):
        total += a * b * 16 + (2 * b if bn else b)  # BN affine, else a conv bias
    return total + 8 * ndf * 16 + 1


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_parameter_count(norm):
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=64, norm=norm), in_channels=36)
    assert sum(p.numel() for p in d.parameters()) == hand_count(36, 64, norm)


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=8, norm="none", spectral=True), in_channels=5)
    x = torch.randn(2, 5, 32, 32)
    for _ in range(50):  # power iterations run in train-mode forwards
        d(x)
    d.eval()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.03)  # unnormalised: ~0.2 at init
    assert torch.isfinite(d(x)).all()


def test_gradients_reach_every_parameter():
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=4), in_channels=7)
    d(torch.randn(2, 7, 40, 40)).mean().backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_arguments():
    with pytest.raises(SPGNetError, match="norm"):
        NLayerDiscriminator(DiscriminatorConfig(norm="layer"), in_channels=36)
    d = NLayerDiscriminator(DiscriminatorConfig(ndf=4), in_channels=36)
    with pytest.raises(SPGNetError, match="36"):
        d(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64), torch.randn(1, 18, 64, 64))
