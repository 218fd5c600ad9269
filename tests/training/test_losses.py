"""Losses and weights lookup: VGG19 perceptual loss against torchvision's VGG19 sliced
as the official release does, GAN/CE losses against hand-computed formulas."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from spgnet import SPGNetError
from spgnet.config import LossWeights
from spgnet.training.losses import GANLoss, NonFiniteLossError, VGG19Perceptual, check_finite, l1, parsing_ce
from spgnet.utils.weights import MissingWeightsError, find_weights, load_state_dict_file

VGG_FILE = "vgg19-dcbb9e9d.pth"


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.setenv(var, str(tmp_path / "empty-cache"))
    for var in ("SPGNET_VGG19_WEIGHTS", "SPGNET_WEIGHTS_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A randomly initialised torchvision VGG19 saved under the standard name in a fake
    torch home (features only, plus one classifier entry that must be ignored)."""
    torch.manual_seed(0)
    net = torchvision.models.vgg19(weights=None).eval()
    home = tmp_path_factory.mktemp("torch-home")
    path = home / "hub" / "checkpoints" / VGG_FILE
    path.parent.mkdir(parents=True)
    state = {k: v for k, v in net.state_dict().items() if k.startswith("features.")}
    state["classifier.6.bias"] = net.classifier[6].bias.detach().clone()
    torch.save(state, path)
    return path, net.features


def official_vgg_loss(features: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The official VGGLoss content term: slices [0:2] [2:7] [7:12] [12:21] [21:30],
    (x*0.5+0.5 - mean)/std, 0.125 * per-sample L1 mean, then batch mean."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    bounds = [(0, 2), (2, 7), (7, 12), (12, 21), (21, 30)]
    hx, hy = (x * 0.5 + 0.5 - mean) / std, (y * 0.5 + 0.5 - mean) / std
    loss = torch.zeros(x.shape[0])
    for a, b in bounds:
        for i in range(a, b):
            layer = features[i]
            if isinstance(layer, torch.nn.ReLU):
                layer = torch.nn.ReLU()
            hx, hy = layer(hx), layer(hy)
        loss = loss + 0.125 * (hx - hy).abs().reshape(x.shape[0], -1).mean(dim=1)
    return loss.mean()


def test_missing_vgg_weights_name_the_file(no_weights):
    with pytest.raises(MissingWeightsError, match=VGG_FILE) as info:
        VGG19Perceptual()
    message = str(info.value)
    assert "SPGNET_VGG19_WEIGHTS" in message and "hub" in message and "checkpoints" in message
    assert isinstance(info.value, SPGNetError)


def test_explicit_or_env_path_that_does_not_exist_is_an_error(no_weights, tmp_path, monkeypatch, vgg_file):
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        find_weights(VGG_FILE, explicit_path=tmp_path / "nope.pth")
    monkeypatch.setenv("SPGNET_VGG19_WEIGHTS", str(tmp_path / "absent"))
    with pytest.raises(MissingWeightsError, match="SPGNET_VGG19_WEIGHTS"):
        find_weights(VGG_FILE)
    # A shared weights folder without this file falls through to the hub cache.
    monkeypatch.delenv("SPGNET_VGG19_WEIGHTS")
    monkeypatch.setenv("SPGNET_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(vgg_file[0].parents[2]))
    assert find_weights(VGG_FILE) == vgg_file[0]


def test_vgg_weights_found_by_path_env_and_hub(no_weights, vgg_file, monkeypatch, tmp_path):
    path, features = vgg_file
    assert find_weights(VGG_FILE, explicit_path=path) == path
    assert find_weights(VGG_FILE, explicit_path=path.parent) == path  # a folder holding it
    monkeypatch.setenv("SPGNET_VGG19_WEIGHTS", str(path))
    assert find_weights(VGG_FILE) == path
    monkeypatch.delenv("SPGNET_VGG19_WEIGHTS")
    monkeypatch.setenv("TORCH_HOME", str(path.parents[2]))  # torch.hub.get_dir() = $TORCH_HOME/hub
    assert find_weights(VGG_FILE) == path

    loss = VGG19Perceptual()  # from the fake hub cache
    assert loss.weights_source == str(path)
    torch.testing.assert_close(loss.features[28].weight, features[28].weight, rtol=0, atol=0)  # conv5_1
    assert len(loss.features) == 30  # truncated after relu5_1

    # a safetensors copy in a folder given by $SPGNET_WEIGHTS_DIR
    from safetensors.torch import save_file

    folder = tmp_path / "weights"
    folder.mkdir()
    state = load_state_dict_file(path)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "vgg19-dcbb9e9d.safetensors"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SPGNET_WEIGHTS_DIR", str(folder))
    found = find_weights(VGG_FILE)
    assert found.name == "vgg19-dcbb9e9d.safetensors"
    torch.testing.assert_close(VGG19Perceptual(weights_path=found).features[0].bias, features[0].bias,
                               rtol=0, atol=0)


def test_perceptual_loss_matches_official_slicing(vgg_file):
    path, features = vgg_file
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 48, generator=gen) * 2 - 1
    y = torch.rand(2, 3, 32, 48, generator=gen) * 2 - 1
    loss = VGG19Perceptual(weights_path=path)
    with torch.no_grad():
        expected = official_vgg_loss(features, x, y)
    torch.testing.assert_close(loss(x, y), expected, rtol=1e-5, atol=1e-7)


def test_random_vgg_needs_explicit_permission_and_behaves(no_weights, tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pth"):  # a given path is never replaced
        VGG19Perceptual(weights_path=tmp_path / "nope.pth", allow_random=True)
    with pytest.warns(UserWarning, match="RANDOM"):
        loss = VGG19Perceptual(allow_random=True)
    assert loss.weights_source == "random"
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    assert torch.equal(loss(y, y), torch.zeros(()))
    value = loss(x, y)
    assert torch.isfinite(value) and value > 0
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    loss.train()
    assert not loss.training


def test_perceptual_layer_choice_is_validated(no_weights):
    with pytest.raises(SPGNetError, match="relu9_9"):
        VGG19Perceptual(layers=("relu9_9",), weights=(1.0,), allow_random=True)
    with pytest.raises(SPGNetError, match="weights"):
        VGG19Perceptual(layers=("relu1_1", "relu2_1"), weights=(1.0,), allow_random=True)


def test_wrong_file_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(SPGNetError, match="not a torchvision VGG19"):
        VGG19Perceptual(weights_path=path)


class _Payload:
    pass


def test_pickled_weights_file_is_refused(tmp_path):
    path = tmp_path / VGG_FILE
    torch.save({"features.0.weight": torch.zeros(1), "obj": _Payload()}, path)
    with pytest.raises(SPGNetError, match=f"{VGG_FILE}.*refusing"):
        load_state_dict_file(path)


LOGITS = [[-1.0, 0.5], [2.0, 0.0], [-3.0, 0.25]]


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("mode,real,fake,gen", [
    ("vanilla", lambda v: math.log1p(math.exp(-v)), lambda v: math.log1p(math.exp(v)), lambda v: math.log1p(math.exp(-v))),
    ("lsgan", lambda v: (v - 1) ** 2, lambda v: v ** 2, lambda v: (v - 1) ** 2),
    ("hinge", lambda v: max(0.0, 1 - v), lambda v: max(0.0, 1 + v), lambda v: -v),
])
def test_gan_loss_formulas(mode, real, fake, gen):
    flat = [v for row in LOGITS for v in row]
    logits = torch.tensor(LOGITS).view(1, 1, 3, 2)
    crit = GANLoss(mode)
    torch.testing.assert_close(crit(logits, True), torch.tensor(_mean([real(v) for v in flat])))
    torch.testing.assert_close(crit(logits, False), torch.tensor(_mean([fake(v) for v in flat])))
    torch.testing.assert_close(crit.generator_loss(logits), torch.tensor(_mean([gen(v) for v in flat])))
    other = torch.tensor([[0.3, -0.7]])
    expected_d = 0.5 * (_mean([real(v) for v in flat]) + _mean([fake(v) for v in (0.3, -0.7)]))
    torch.testing.assert_close(crit.discriminator_loss(logits, other), torch.tensor(expected_d))
    # a list of logits (multi-scale) averages the per-scale losses
    torch.testing.assert_close(crit([logits, other], True),
                               torch.tensor(0.5 * (_mean([real(v) for v in flat]) + _mean([real(v) for v in (0.3, -0.7)]))))


def test_gan_loss_mode_is_validated():
    with pytest.raises(SPGNetError, match="wgan"):
        GANLoss("wgan")


def test_parsing_ce_and_l1_match_hand_computation():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 20, 3, 4, generator=gen)
    labels = torch.randint(0, 20, (2, 3, 4), generator=gen)
    z = logits.double().numpy()
    lab = labels.numpy()
    logsumexp = np.log(np.exp(z).sum(axis=1))
    picked = np.take_along_axis(z, lab[:, None], axis=1)[:, 0]
    expected = float((logsumexp - picked).mean())
    assert parsing_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert parsing_ce(logits, labels[:, None]).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="labels"):
        parsing_ce(logits, labels[:, :2])

    a, b = torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.tensor([[0.0, 1.0], [0.5, -1.0]])
    assert l1(a, b).item() == pytest.approx((1 + 3 + 0 + 1) / 4)


def test_loss_weights_defaults_follow_the_official_release():
    w = LossWeights()
    assert (w.l1, w.perceptual, w.adversarial, w.ce, w.adversarial_start_epoch) == (1.0, 1.0, 0.01, 10.0, 6)
    # official loop: `for epoch in 1..N: use_gan = epoch >= 6` -> 0-based index 5 is the first
    assert [w.adversarial_enabled(i) for i in range(7)] == [False] * 5 + [True] * 2
    assert not LossWeights(adversarial=0.0).adversarial_enabled(10)


def test_check_finite_names_the_bad_losses():
    check_finite({"l1": torch.tensor(0.5), "vgg": 1.0})
    with pytest.raises(NonFiniteLossError, match=r"step 7.*vgg=nan.*gan=inf"):
        check_finite({"l1": torch.tensor(0.5), "vgg": torch.tensor(float("nan")), "gan": float("inf")}, step=7)
