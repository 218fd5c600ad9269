"""The metric registry: every metric declared, batch accumulation equals references."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from spgnet import SPGNetError
from spgnet.utils.io import tensor_to_image
from spgnet.evaluation.metrics import METRICS, create_metric, pose_masks
from spgnet.parsing import miou


def test_every_metric_is_declared():
    expected = {"ssim", "mask_ssim", "psnr", "l1", "lpips", "mask_lpips", "fid", "pckh", "parsing_miou"}
    assert expected <= set(METRICS)
    for info in METRICS.values():
        assert info.matches and info.inputs
    assert METRICS["lpips"].weights == ("alexnet-owt-7be5be79.pth",)
    assert METRICS["fid"].weights == ("pt_inception-2015-12-05-6726825d.pth",)
    assert not METRICS["ssim"].weights and not METRICS["fid"].higher_is_better
    with pytest.raises(SPGNetError, match="unknown metric"):
        create_metric("inception_score")


def test_image_metrics_accumulate_over_batches_on_8bit_images():
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(5, 3, 24, 20, generator=gen) * 2 - 1
    fake = (real + 0.3 * torch.randn(5, 3, 24, 20, generator=gen)).clamp(-1, 1)
    kp = torch.full((5, 18, 2), -1.0)
    kp[:, 1] = torch.tensor([10.0, 5.0])
    kp[:, 8] = torch.tensor([10.0, 18.0])
    names = ("ssim", "mask_ssim", "psnr", "l1")
    metrics = {n: create_metric(n) for n in names}
    for sl in (slice(0, 2), slice(2, 5)):
        for m in metrics.values():
            m.update({"fake": fake[sl], "real": real[sl], "target_kp": kp[sl]})
    f8 = [tensor_to_image(x) for x in fake]
    r8 = [tensor_to_image(x) for x in real]
    masks = pose_masks(kp, 24, 20).numpy()
    args = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
    ref = {
        "ssim": np.mean([structural_similarity(a, b, **args) for a, b in zip(f8, r8)]),
        "mask_ssim": np.mean([structural_similarity(a * m[..., None], b * m[..., None], **args)
                              for a, b, m in zip(f8, r8, masks)]),
        "psnr": np.mean([10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2)) for a, b in zip(f8, r8)]),
        "l1": np.mean([np.abs(a.astype(float) - b).mean() / 255 for a, b in zip(f8, r8)]),
    }
    for n in names:
        out = metrics[n].compute()
        assert out["count"] == 5
        assert out[n] == pytest.approx(ref[n], abs=1e-6), n
    assert masks.any(axis=(1, 2)).all() and not masks.all()


def test_parsing_miou_accumulates_one_confusion_matrix():
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 20, (4, 16, 12), generator=gen)
    pred = torch.where(torch.rand(4, 16, 12, generator=gen) < 0.7, target, torch.randint(0, 20, (4, 16, 12), generator=gen))
    metric = create_metric("parsing_miou")
    metric.update({"pred_parsing": pred[:1], "target_parsing": target[:1]})
    metric.update({"pred_parsing": pred[1:], "target_parsing": target[1:]})
    assert metric.compute()["parsing_miou"] == pytest.approx(miou(pred, target), rel=1e-12)
    # hand-computed: background 3 px right, 1 px predicted as hair; hair 2 px right
    metric.reset()
    metric.update({"pred_parsing": torch.tensor([[0, 0, 0, 2, 2, 2]]), "target_parsing": torch.tensor([[0, 0, 0, 0, 2, 2]])})
    out = metric.compute()
    assert out["parsing_miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert out["iou/hair"] == pytest.approx(2 / 3) and np.isnan(out["iou/hat"])
    assert out["pixel_accuracy"] == pytest.approx(5 / 6)
