"""ACE / SEAN normalization (paper Eq. 6-7) and the style encoder's region pooling,
checked against per-class loop references written here (the official code's algorithm)."""

import math

import pytest
import torch
import torch.nn.functional as F

from spgnet.models.sean import ACE, SemanticCondition
from spgnet.models.style import StyleEncoder, region_average_pool

K = 20


def blocky_labels(b, h, w, cell, seed):
    """(B, H, W) labels constant on cell×cell blocks; every class appears when there are ≥20 blocks."""
    g = torch.Generator().manual_seed(seed)
    hc, wc = h // cell, w // cell
    coarse = torch.stack([torch.randperm(hc * wc, generator=g) % K for _ in range(b)]).view(b, hc, wc)
    return coarse.repeat_interleave(cell, 1).repeat_interleave(cell, 2)


def onehot(labels):
    return F.one_hot(labels, K).permute(0, 3, 1, 2).float()


def nearest_index(n_in, n_out):
    return [math.floor(i * n_in / n_out) for i in range(n_out)]


def reference_ace(ace, x, labels, codes):
    """Official ACE forward with loops over batch items and classes (noise_scale must be 0)."""
    b, c, h, w = x.shape
    labels = labels[:, nearest_index(labels.shape[1], h)][:, :, nearest_index(labels.shape[2], w)]
    seg = onehot(labels)
    normalized = F.batch_norm(x, None, None, training=True, eps=ace.norm.eps)
    pad = ace.style_gamma.kernel_size[0] // 2
    middle = torch.zeros(b, codes.shape[-1], h, w)
    for i in range(b):
        for k in range(K):
            mask = labels[i] == k
            if mask.any():
                mu = F.relu(F.linear(codes[i, k], ace.style_fc_weight[k], ace.style_fc_bias[k]))
                middle[i][:, mask] = mu[:, None]
    gamma_s = F.conv2d(middle, ace.style_gamma.weight, ace.style_gamma.bias, padding=pad)
    beta_s = F.conv2d(middle, ace.style_beta.weight, ace.style_beta.bias, padding=pad)
    sem = ace.semantic
    hidden = F.relu(F.conv2d(seg, sem.shared[0].weight, sem.shared[0].bias, padding=pad))
    gamma_o = F.conv2d(hidden, sem.gamma.weight, sem.gamma.bias, padding=pad)
    beta_o = F.conv2d(hidden, sem.beta.weight, sem.beta.bias, padding=pad)
    a_g, a_b = torch.sigmoid(ace.blend_gamma), torch.sigmoid(ace.blend_beta)
    gamma = a_g * gamma_s + (1 - a_g) * gamma_o
    beta = a_b * beta_s + (1 - a_b) * beta_o
    return normalized * (1 + gamma) + beta


@pytest.mark.parametrize("factorized", [True, False])
@pytest.mark.parametrize("kernel,blend", [(3, "init"), (5, "random")])
def test_ace_matches_loop_reference(factorized, kernel, blend):
    torch.manual_seed(0)
    ace = ACE(6, style_dim=8, kernel_size=kernel, spade_hidden=5, factorized=factorized)
    if blend == "random":
        with torch.no_grad():
            ace.blend_gamma.fill_(0.7)
            ace.blend_beta.fill_(-1.3)
    x = torch.randn(2, 6, 12, 10)
    labels = blocky_labels(2, 24, 20, 2, seed=1)  # parsing at twice x's size: resized nearest
    codes = torch.randn(2, K, 8)
    codes[0, 3] = 0  # an absent class has a zero code
    out = ace(x, onehot(labels), codes)
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference_ace(ace, x, labels, codes), rtol=1e-4, atol=1e-5)


def test_blend_is_half_at_init():
    ace = ACE(4, style_dim=8, kernel_size=3, spade_hidden=4)
    assert torch.sigmoid(ace.blend_gamma).item() == 0.5
    assert torch.sigmoid(ace.blend_beta).item() == 0.5
    assert ace.noise_scale.shape == (4,) and not ace.noise_scale.any()


def test_noise_is_per_pixel_and_shared_over_channels():
    torch.manual_seed(0)
    ace = ACE(5, style_dim=8, kernel_size=3, spade_hidden=4).eval()  # BN: running mean 0, var 1
    labels = blocky_labels(1, 16, 16, 4, seed=2)
    seg, codes = onehot(labels), torch.randn(1, K, 8)

    def run(x_value, scale):
        with torch.no_grad():
            ace.noise_scale.copy_(scale)
        torch.manual_seed(123)
        with torch.no_grad():
            return ace(torch.full((1, 5, 16, 16), x_value), seg, codes)

    zero = torch.zeros(5)
    beta = run(0.0, zero)
    slope = (run(1.0, zero) - beta) * math.sqrt(1 + ace.norm.eps)  # = 1 + gamma
    scale = torch.tensor([0.5, 1.0, -2.0, 3.0, 0.25])
    noise = (run(0.0, scale) - beta) * math.sqrt(1 + ace.norm.eps) / slope / scale.view(1, 5, 1, 1)
    torch.testing.assert_close(noise, noise[:, :1].expand_as(noise), rtol=1e-3, atol=1e-3)
    assert 0.7 < noise[0, 0].std().item() < 1.3


@pytest.mark.parametrize("kernel", [3, 5])
def test_style_code_change_is_local_to_its_class(kernel):
    torch.manual_seed(0)
    ace = ACE(4, style_dim=8, kernel_size=kernel, spade_hidden=4)
    labels = blocky_labels(2, 24, 24, 4, seed=3)
    seg, codes = onehot(labels), torch.randn(2, K, 8)
    x = torch.randn(2, 4, 24, 24)
    k = int(labels[0, 10, 10])
    changed = codes.clone()
    changed[0, k] += 2 * torch.randn(8)
    assert not torch.equal(ace.class_styles(codes)[0, k], ace.class_styles(changed)[0, k])
    with torch.no_grad():
        diff = (ace(x, seg, changed) - ace(x, seg, codes)).abs().amax(1) > 1e-6  # (B, H, W)
    region = (labels[0] == k).float()[None, None]
    footprint = F.max_pool2d(region, kernel, stride=1, padding=kernel // 2)[0, 0] > 0
    assert diff[0][labels[0] == k].all()  # changes everywhere in the class region
    assert not diff[0][~footprint].any()  # and nowhere beyond the conv footprint
    assert not diff[1].any()  # the other sample is untouched


def loop_region_average(features, labels):
    b, d, h, w = features.shape
    labels = labels[:, nearest_index(labels.shape[1], h)][:, :, nearest_index(labels.shape[2], w)]
    out = torch.zeros(b, K, d)
    for i in range(b):
        for k in range(K):
            mask = labels[i] == k
            if mask.any():
                out[i, k] = features[i][:, mask].mean(1)
    return out


@pytest.mark.parametrize("size,parsing_size", [((8, 6), (8, 6)), ((8, 6), (16, 12)), ((5, 3), (11, 7))])
def test_region_average_pool_matches_loop(size, parsing_size):
    torch.manual_seed(0)
    features = torch.randn(3, 7, *size)
    labels = torch.randint(0, 6, (3, *parsing_size))  # classes 6..19 absent -> zero codes
    labels[1] = 2
    codes = region_average_pool(features, onehot(labels))
    assert codes.shape == (3, K, 7)
    torch.testing.assert_close(codes, loop_region_average(features, labels), rtol=1e-5, atol=1e-6)
    assert not codes[:, 6:].any()


def test_style_encoder_codes_any_size():
    torch.manual_seed(0)
    enc = StyleEncoder(style_dim=8, nf=4)
    image = torch.rand(2, 3, 67, 45) * 2 - 1
    labels = blocky_labels(2, 67, 45, 1, seed=4) % 5
    features = enc(image)
    assert features.shape == (2, 8, 34, 24) and features.abs().max() <= 1
    codes = enc.codes(image, onehot(labels))
    assert codes.shape == (2, K, 8)
    torch.testing.assert_close(codes, loop_region_average(features, labels), rtol=1e-5, atol=1e-6)
    assert not codes[:, 5:].any()


@pytest.mark.parametrize("layout", ["device", "official"])
def test_noise_layouts_draw_what_they_say(layout):
    """With a seed, the noise ACE adds is randn(B, 1, H, W) ("device") or the official
    release's randn(B, W, H, 1) transposed ("official"): recovered from the output as
    (out(noise_scale=1) - out(noise_scale=0)) / ((1 + γ) / sqrt(1 + eps)) in eval mode."""
    torch.manual_seed(0)
    b, c, h, w = 2, 3, 6, 5  # H != W: a transposed draw cannot pass for the other one
    ace = ACE(c, style_dim=4, kernel_size=3, spade_hidden=4, noise_layout=layout).eval()
    x = torch.randn(b, c, h, w)
    parsing = onehot(blocky_labels(b, h, w, 1, seed=1))
    codes = torch.randn(b, K, 4)
    with torch.no_grad():
        out0 = ace(x, parsing, codes)  # noise_scale is 0 at initialisation
        ace.noise_scale.fill_(1.0)
        torch.manual_seed(123)
        out1 = ace(x, parsing, codes)
        scale = ace.modulation(SemanticCondition(parsing, codes), (h, w), x.dtype)[:, :c]  # 1 + γ
    recovered = (out1 - out0) * math.sqrt(1 + ace.norm.eps) / scale  # (B, C, H, W), equal over C
    torch.manual_seed(123)
    if layout == "official":
        raw = torch.randn(b, w, h, 1)
        expected = torch.stack([torch.stack([raw[i, :, :, 0].t() for i in range(b)])], 1)  # [i, 0, y, x] = raw[i, x, y, 0]
    else:
        expected = torch.randn(b, 1, h, w)
    torch.testing.assert_close(recovered, expected.expand(b, c, h, w), rtol=1e-4, atol=1e-4)
