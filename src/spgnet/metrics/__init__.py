"""Evaluation metrics (DESIGN §10), one module per metric, all behind one registry.

=================  ==============================================  ===========================
name               matches                                         module
=================  ==============================================  ===========================
``ssim``           skimage SSIM (Gaussian σ=1.5, R=255, 8-bit)     ``ssim``
``mask_ssim``      PATN Market Mask-SSIM                           ``ssim`` + ``masks``
``psnr``, ``l1``   skimage PSNR; Deformable-GAN L1 ([0, 1])        ``pixel``
``lpips``          lpips AlexNet v0.1                              ``lpips_metric``
``mask_lpips``     GFLA Mask-LPIPS                                 ``lpips_metric`` + ``masks``
``fid``            pytorch-fid                                     ``fid`` + ``inception``
``pckh``           PATN calPCKH                                    ``pckh``
``parsing_miou``   confusion-matrix mIoU (stage 1)                 ``parsing_miou``
=================  ==============================================  ===========================

Use ``create_metric(name, **options)`` and feed batch dicts (keys in
``spgnet.metrics.registry``); ``METRICS[name]`` says what a metric reads and which
weights it needs. The functions (``ssim``, ``pckh``, ``frechet_distance``, ...) are
usable on their own.
"""

from spgnet.metrics._images import quantize, to_uint8_scale
from spgnet.metrics.registry import METRICS, MeanMetric, Metric, MetricInfo, create_metric, register_metric
from spgnet.metrics.masks import MASK_LIMBS, pose_masks
from spgnet.metrics.ssim import masked_ssim, ssim
from spgnet.metrics.pixel import l1, psnr
from spgnet.metrics.pckh import pckh, pckh_counts
from spgnet.metrics.parsing_miou import ConfusionAccumulator
from spgnet.metrics.lpips_metric import LPIPS
from spgnet.metrics.inception import InceptionFeatures
from spgnet.metrics.fid import FIDStatistics, FeatureStatistics, cached_statistics, compute_statistics, frechet_distance

__all__ = [
    "METRICS", "MetricInfo", "Metric", "MeanMetric", "register_metric", "create_metric",
    "quantize", "to_uint8_scale", "MASK_LIMBS", "pose_masks", "ssim", "masked_ssim", "psnr", "l1",
    "pckh", "pckh_counts", "ConfusionAccumulator", "LPIPS", "InceptionFeatures",
    "FIDStatistics", "FeatureStatistics", "compute_statistics", "cached_statistics", "frechet_distance",
]
