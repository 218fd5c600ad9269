"""Evaluation metrics (docs/design.md §10), one module per metric, all behind one registry.

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
``spgnet.evaluation.metrics.registry``); ``METRICS[name]`` says what a metric reads and which
weights it needs. The functions (``ssim``, ``pckh``, ``frechet_distance``, ...) are
usable on their own.
"""

from spgnet.evaluation.metrics.quantize import quantize, to_uint8_scale
from spgnet.evaluation.metrics.registry import METRICS, MeanMetric, Metric, MetricInfo, create_metric, register_metric
from spgnet.evaluation.metrics.masks import MASK_LIMBS, pose_masks
from spgnet.evaluation.metrics.ssim import masked_ssim, ssim
from spgnet.evaluation.metrics.pixel import l1, psnr
from spgnet.evaluation.metrics.pckh import pckh, pckh_counts
from spgnet.evaluation.metrics.parsing_miou import ConfusionAccumulator
from spgnet.evaluation.metrics.lpips_metric import LPIPS
from spgnet.evaluation.metrics.inception import InceptionFeatures
from spgnet.evaluation.metrics.fid import FIDStatistics, FeatureStatistics, cached_statistics, compute_statistics, frechet_distance

__all__ = [
    "METRICS", "MetricInfo", "Metric", "MeanMetric", "register_metric", "create_metric",
    "quantize", "to_uint8_scale", "MASK_LIMBS", "pose_masks", "ssim", "masked_ssim", "psnr", "l1",
    "pckh", "pckh_counts", "ConfusionAccumulator", "LPIPS", "InceptionFeatures",
    "FIDStatistics", "FeatureStatistics", "compute_statistics", "cached_statistics", "frechet_distance",
]
