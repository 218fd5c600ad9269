"""InceptionV3 pool3 features (2048-d) for FID.

Two variants, both torchvision's ``Inception3`` module tree (parameter names and
shapes as torchvision), both fed images scaled to [-1, 1]:

* ``"pytorch-fid"`` (default; the FID of the papers): the TensorFlow Inception graph
  of 2015-12-05 that the original TTUR FID code used, as ported by pytorch-fid
  (weights ``pt_inception-2015-12-05-6726825d.pth``, 1008 classes, no aux head). It
  differs from torchvision's network in the pooling branches only:
  Mixed_5b/5c/5d (InceptionA), Mixed_6b..6e (InceptionC) and Mixed_7b (InceptionE)
  average-pool without counting the zero padding (TF's ``count_include_pad=False``),
  and Mixed_7c pools with a 3×3 **max** pool (a quirk of that TF graph).
* ``"torchvision"``: torchvision's ImageNet weights ``inception_v3_google-0cc3c7bd.pth``
  (Google's weights; torchvision's ``transform_input`` only maps ImageNet-normalised
  input to the same [-1, 1] scaling, so we feed [-1, 1] directly). Its FID values are
  not comparable with published ones.

Resize (stated in every FID output): ``"bilinear"`` to 299×299 with
``F.interpolate(mode='bilinear', align_corners=False)`` and no antialiasing, as
pytorch-fid does; ``"none"`` feeds the images at their own size (min 75 px).

Weights come from an explicit path, an environment variable or the torch hub cache
(``spgnet.utils.weights.find_weights``); never downloaded. ``allow_random=True`` builds the
same architecture with seeded random weights when the file is absent (for testing the
code path; the numbers mean nothing and ``weights_source`` says ``"random"``).

Shapes: images ``(B, 3, H, W)`` float in [-1, 1] -> features ``(B, 2048)`` float32.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from spgnet import SPGNetError
from spgnet.utils.weights import load_exact
from spgnet.utils.weights import MissingWeightsError, find_weights

VARIANTS: dict[str, tuple[str, str]] = {  # variant -> (weights file name, environment variable)
    "pytorch-fid": ("pt_inception-2015-12-05-6726825d.pth", "SPGNET_FID_INCEPTION_WEIGHTS"),
    "torchvision": ("inception_v3_google-0cc3c7bd.pth", "SPGNET_INCEPTION_WEIGHTS"),
}
RESIZE_MODES = ("bilinear", "none")
FEATURE_DIM = 2048


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of in-image pixels only.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class TFInceptionA(InceptionA):
    """InceptionA with TF's average pool in the pooling branch."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b5x5 = self.branch5x5_2(self.branch5x5_1(x))
        b3x3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), b5x5, b3x3, self.branch_pool(_tf_avg_pool(x))]


class TFInceptionC(InceptionC):
    """InceptionC with TF's average pool in the pooling branch."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = conv(dbl)
        return [self.branch1x1(x), b7x7, dbl, self.branch_pool(_tf_avg_pool(x))]


class TFInceptionE(InceptionE):
    """InceptionE with a selectable pooling branch: TF's average pool (Mixed_7b) or
    the 3×3 max pool of the TF graph's Mixed_7c."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.pool = _max_pool if max_pool else _tf_avg_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3x3 = self.branch3x3_1(x)
        b3x3 = torch.cat([self.branch3x3_2a(b3x3), self.branch3x3_2b(b3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        return [self.branch1x1(x), b3x3, dbl, self.branch_pool(self.pool(x))]


def build_inception(variant: str) -> Inception3:
    """The full (classifier included) network whose state dict the variant's file holds."""
    if variant == "pytorch-fid":
        net = Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
        net.Mixed_5b = TFInceptionA(192, pool_features=32)
        net.Mixed_5c = TFInceptionA(256, pool_features=64)
        net.Mixed_5d = TFInceptionA(288, pool_features=64)
        net.Mixed_6b = TFInceptionC(768, channels_7x7=128)
        net.Mixed_6c = TFInceptionC(768, channels_7x7=160)
        net.Mixed_6d = TFInceptionC(768, channels_7x7=160)
        net.Mixed_6e = TFInceptionC(768, channels_7x7=192)
        net.Mixed_7b = TFInceptionE(1280, max_pool=False)
        net.Mixed_7c = TFInceptionE(2048, max_pool=True)
        return net
    if variant == "torchvision":
        return Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False)
    raise SPGNetError(f"Inception variant must be one of {', '.join(VARIANTS)}, got {variant!r}")


class InceptionFeatures(nn.Module):
    """Pool3 features of InceptionV3: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 2048)``."""

    def __init__(
        self,
        variant: str = "pytorch-fid",
        weights: str | Path | None = None,
        allow_random: bool = False,
        resize: str = "bilinear",
        seed: int = 0,
    ):
        super().__init__()
        if resize not in RESIZE_MODES:
            raise SPGNetError(f"Inception resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        if variant not in VARIANTS:
            raise SPGNetError(f"Inception variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        filename, env_var = VARIANTS[variant]
        try:
            path = find_weights(filename, explicit_path=weights, env_var=env_var)
        except MissingWeightsError:
            if not allow_random or weights is not None:  # a path that was given must exist
                raise
            path = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_inception(variant)
            if path is None:  # He init keeps activations O(1) through the 94 conv+ReLU layers
                for module in net.modules():
                    if isinstance(module, nn.Conv2d):
                        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if path is None:
            warnings.warn(f"{filename} not found: InceptionV3 has RANDOM weights, FID values are meaningless", stacklevel=2)
        else:
            load_exact(net, path)

        self.features = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
            net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            nn.AdaptiveAvgPool2d(1),
        ).eval().requires_grad_(False)
        self.variant = variant
        self.resize = resize
        self.weights_source = str(path) if path is not None else "random"
        # What makes two sets of statistics comparable; stored with cached statistics.
        self.protocol = {
            "feature": f"inception-v3-pool3-{FEATURE_DIM}",
            "variant": variant,
            "weights": filename if path is not None else f"random-seed{seed}",  # safetensors copies included
            "resize": "bilinear-299" if resize == "bilinear" else "none",
            "input": "8-bit RGB scaled to [-1, 1]",
        }

    def train(self, mode: bool = True) -> InceptionFeatures:  # always an inference network
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"InceptionFeatures: expected (B, 3, H, W) images, got {tuple(images.shape)}")
        x = images.float()
        if self.resize == "bilinear":
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.features(x).flatten(1)
