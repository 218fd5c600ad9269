"""FID: the Fréchet distance against an eigenvalue formula, streaming statistics
against np.cov, and the whole path (files -> cached statistics -> registered metric)
with a randomly initialised InceptionV3 of the real architecture."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.inception import Inception3, InceptionA, InceptionE

import spgnet.evaluation.metrics.fid as fid_module
from spgnet import SPGNetError
from spgnet.utils.io import image_to_tensor, save_image
from spgnet.evaluation.metrics import FeatureStatistics, InceptionFeatures, cached_statistics, create_metric, frechet_distance
from spgnet.evaluation.metrics.inception import TFInceptionA, TFInceptionE, build_inception
from spgnet.utils.weights import MissingWeightsError


def eigen_frechet(mu1, s1, mu2, s2) -> float:
    """tr(S1 + S2) - 2 Σ sqrt(eig(S1 S2)) + |mu1 - mu2|² (S1 S2 has real eigenvalues >= 0)."""
    eig = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


@pytest.mark.parametrize("dim", [16, 64])
def test_frechet_distance_matches_eigenvalue_formula(dim):
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((300, dim)) @ rng.standard_normal((dim, dim))
    b = 0.7 * rng.standard_normal((250, dim)) @ rng.standard_normal((dim, dim)) + 0.5
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    expected = eigen_frechet(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_streaming_statistics_equal_numpy_cov():
    rng = np.random.default_rng(0)
    feats = rng.gamma(2.0, 1.5, (23, 40)) + 100.0  # large common offset: tests the shifted sums
    stats = FeatureStatistics()
    for chunk in np.split(feats, [5, 6, 17]):  # uneven batches
        stats.update(torch.from_numpy(chunk))
    result = stats.result()
    assert result.count == 23
    np.testing.assert_allclose(result.mu, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(result.sigma, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)


def test_fid_inception_has_the_torchvision_parameter_layout():
    # pytorch-fid's weights file is a state dict of torchvision's Inception3 with 1008
    # classes and no aux head: the TF-pooling blocks must not change names or shapes.
    ours = {k: v.shape for k, v in build_inception("pytorch-fid").state_dict().items()}
    plain = {k: v.shape for k, v in Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict().items()}
    assert ours == plain


def test_tf_blocks_differ_from_torchvision_only_in_the_pooling_branch():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 9, 7)
    # count of in-image pixels under each 3x3 window (TF's divisor)
    count = F.avg_pool2d(torch.ones(1, 1, 9, 7), 3, 1, 1, count_include_pad=True) * 9
    tf_a, tv_a = TFInceptionA(16, pool_features=8).eval(), InceptionA(16, pool_features=8).eval()
    tv_a.load_state_dict(tf_a.state_dict())
    out_tf, out_tv = tf_a(x), tv_a(x)
    torch.testing.assert_close(out_tf[:, :-8], out_tv[:, :-8])
    torch.testing.assert_close(out_tf[:, -8:], tv_a.branch_pool(F.avg_pool2d(x, 3, 1, 1) * 9 / count))
    assert not torch.allclose(out_tf[:, -8:], out_tv[:, -8:])

    tf_e, tv_e = TFInceptionE(16, max_pool=True).eval(), InceptionE(16).eval()
    tv_e.load_state_dict(tf_e.state_dict())
    out_tf, out_tv = tf_e(x), tv_e(x)
    torch.testing.assert_close(out_tf[:, :-192], out_tv[:, :-192])
    torch.testing.assert_close(out_tf[:, -192:], tv_e.branch_pool(F.max_pool2d(x, 3, 1, 1)))


def test_weights_file_is_loaded_and_features_are_torchvisions_pool3(tmp_path):
    torch.manual_seed(0)
    net = build_inception("pytorch-fid").eval()
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    model = InceptionFeatures(weights=path)
    assert model.weights_source == str(path) and model.protocol["weights"] == path.name
    pool3 = {}
    net.avgpool.register_forward_hook(lambda mod, inp, out: pool3.setdefault("out", out.flatten(1)))
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        net(x)  # torchvision's own forward order; the hook keeps pool3
    torch.testing.assert_close(model(x), pool3["out"], rtol=1e-4, atol=1e-5)

    wrong = tmp_path / "not-inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(SPGNetError, match="not-inception.pth: weights do not fit"):
        InceptionFeatures(weights=wrong)


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "empty-cache"))
    for var in ("SPGNET_FID_INCEPTION_WEIGHTS", "SPGNET_INCEPTION_WEIGHTS", "SPGNET_WEIGHTS_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_missing_inception_weights_are_reported(no_weights):
    with pytest.raises(MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth"):
        InceptionFeatures()


@pytest.mark.slow
def test_full_fid_path_with_random_inception(tmp_path, no_weights, monkeypatch):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 32, 3), dtype=np.uint8) for _ in range(7)]
    files = []
    for i, im in enumerate(images):
        files.append(tmp_path / f"real{i}.png")
        save_image(im, files[-1])
    with pytest.warns(UserWarning, match="RANDOM"):
        model = InceptionFeatures(allow_random=True)
    assert model.weights_source == "random"

    stats = cached_statistics(files, model, tmp_path / "cache", batch_size=4)
    assert stats.count == 7  # 4 + a remainder of 3, none dropped
    direct = model(torch.stack([image_to_tensor(im) for im in images])).double().numpy()
    assert direct.shape == (7, 2048)
    np.testing.assert_allclose(stats.mu, direct.mean(0), rtol=1e-4, atol=1e-6 * np.abs(direct).max())
    np.testing.assert_allclose(stats.sigma, np.cov(direct, rowvar=False), rtol=1e-3, atol=1e-5 * np.abs(direct).max() ** 2)

    # second call: read from the cache, nothing recomputed
    monkeypatch.setattr(fid_module, "compute_statistics", lambda *a, **k: pytest.fail("cache not used"))
    again = cached_statistics(files, model, tmp_path / "cache", batch_size=4)
    np.testing.assert_array_equal(again.sigma, stats.sigma)
    assert again.protocol == model.protocol and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert fid_module.statistics_cache_key(files[:6], model.protocol) != fid_module.statistics_cache_key(files, model.protocol)

    # the registered metric, fed the same images as [-1, 1] batches: FID of a set with itself ~ 0
    metric = create_metric("fid", real_stats=stats, model=model)
    batch = torch.stack([image_to_tensor(im) for im in images])
    metric.update({"fake": batch[:3]})
    metric.update({"fake": batch[3:]})
    out = metric.compute()
    assert out["count"] == 7
    assert abs(out["fid"]) < 1e-3 * np.trace(stats.sigma)
