"""LPIPS through the lpips package with local AlexNet weights only: a missing file is
named; with a random AlexNet saved to disk the distances equal an independent
re-implementation of the LPIPS v0.1 formula."""

from pathlib import Path

import lpips
import pytest
import torch
import torch.nn.functional as F
import torchvision

from spgnet.evaluation.metrics import LPIPS, create_metric, quantize
from spgnet.utils.weights import MissingWeightsError


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "empty-cache"))
    for var in ("SPGNET_ALEXNET_WEIGHTS", "SPGNET_WEIGHTS_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def reference_lpips(path: Path, x: torch.Tensor, y: torch.Tensor, version: str = "0.1") -> torch.Tensor:
    """LPIPS from its definition: unit-normalised AlexNet relu1..relu5 features, squared
    differences weighted by the released linear heads, spatial mean, summed."""
    alex = torchvision.models.alexnet(weights=None)
    alex.load_state_dict(torch.load(path, weights_only=True))
    heads = torch.load(Path(lpips.__file__).parent / "weights" / f"v{version}" / "alex.pth", weights_only=True,
                       map_location="cpu")
    if version == "0.1":
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        x, y = (x - shift) / scale, (y - shift) / scale
    total = 0
    relu_after = (1, 4, 7, 9, 11)  # indices of the ReLUs in alexnet.features
    fx, fy = x, y
    layer = 0
    with torch.no_grad():
        for i, module in enumerate(alex.features[:12]):
            fx, fy = module(fx), module(fy)
            if i in relu_after:
                nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                w = heads[f"lin{layer}.model.1.weight"]
                total = total + F.conv2d((nx - ny) ** 2, w).mean(dim=(2, 3))
                layer += 1
    return total.flatten()


def test_missing_alexnet_weights_name_the_file(no_weights):
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        LPIPS()


def test_lpips_with_local_random_alexnet(random_alexnet):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 48, generator=gen) * 2 - 1
    y = (x + 0.4 * torch.randn(3, 3, 64, 48, generator=gen)).clamp(-1, 1)
    net = LPIPS(alexnet_weights=random_alexnet)
    assert torch.equal(net(x, x), torch.zeros(3))
    d = net(x, y)
    assert d.shape == (3,) and torch.isfinite(d).all() and (d > 0).all()
    torch.testing.assert_close(d, reference_lpips(random_alexnet, x, y), rtol=1e-4, atol=1e-7)

    old = LPIPS(version="0.0", alexnet_weights=random_alexnet)
    torch.testing.assert_close(old(x, y), reference_lpips(random_alexnet, x, y, "0.0"), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(old(x, y), d)

    # Mask-LPIPS: full mask = LPIPS, empty mask = both images all zero = 0
    torch.testing.assert_close(net.masked(x, y, torch.ones(3, 64, 48)), d)
    assert torch.equal(net.masked(x, y, torch.zeros(3, 64, 48)), torch.zeros(3))

    # registered metrics share the network; the target pose mask restricts the comparison
    metric = create_metric("lpips", net=net)
    metric.update({"fake": x, "real": y})
    assert metric.compute()["lpips"] == pytest.approx(float(net(quantize(x), quantize(y)).mean()), rel=1e-6)
    kp = torch.full((3, 18, 2), -1.0)
    kp[:, 1], kp[:, 8] = torch.tensor([24.0, 10.0]), torch.tensor([24.0, 50.0])
    masked = create_metric("mask_lpips", net=net)
    masked.update({"fake": x, "real": y, "target_kp": kp})
    value = masked.compute()["mask_lpips"]
    assert 0 < value < metric.compute()["lpips"]
