"""LPIPS and Mask-LPIPS through the ``lpips`` package (Zhang et al. CVPR'18).

Matches ``lpips.LPIPS(net='alex', version='0.1')`` — the configuration of the
pose-transfer papers (GFLA ``metrics.py`` uses the same AlexNet linear heads via the
older ``PerceptualSimilarity`` ``dist_model``). ``version='0.0'`` selects the first
release (no input scaling layer, its own heads).

Weights: the linear heads ship inside the ``lpips`` wheel. The AlexNet trunk is
torchvision's ImageNet ``alexnet-owt-7be5be79.pth``; ``lpips`` would download it, so
we build the trunk randomly initialised (``pnet_rand=True``) and load that file
ourselves from an explicit path, ``$SPGNET_ALEXNET_WEIGHTS`` or the torch hub cache
(``spgnet.utils.weights.find_weights``); a missing file raises ``MissingWeightsError``
naming it, nothing is downloaded.

Inputs: ``(B, 3, H, W)`` float in **[-1, 1]** (the lpips convention); output ``(B,)``
distances (spatial mean of the per-layer weighted feature differences). Quantise
generator output first (``spgnet.evaluation.metrics.quantize``) to score what was saved to disk.

Mask-LPIPS (Market-1501; GFLA ``calculate_mask_lpips``): both images in [-1, 1] are
multiplied by the target pose mask (background becomes 0, i.e. mid-grey), then LPIPS.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from spgnet import SPGNetError
from spgnet.evaluation.metrics.quantize import quantize
from spgnet.utils.weights import load_exact
from spgnet.evaluation.metrics.masks import pose_masks
from spgnet.evaluation.metrics.registry import MeanMetric, register_metric
from spgnet.utils.weights import find_weights, load_state_dict_file

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
ALEXNET_ENV = "SPGNET_ALEXNET_WEIGHTS"
VERSIONS = ("0.1", "0.0")


def _import_lpips():
    try:
        import lpips
    except ImportError:
        raise SPGNetError("LPIPS needs the 'lpips' package: pip install 'spgnet[eval]'") from None
    return lpips


class LPIPS(nn.Module):
    """AlexNet LPIPS with weights from local files only.

    ``alexnet_weights``: path to torchvision's ``alexnet-owt-7be5be79.pth`` (or a
    safetensors copy); when None, ``$SPGNET_ALEXNET_WEIGHTS`` and the torch hub cache
    are searched.
    """

    def __init__(self, version: str = "0.1", alexnet_weights: str | Path | None = None):
        super().__init__()
        version = version.removeprefix("v")
        if version not in VERSIONS:
            raise SPGNetError(f"LPIPS version must be one of {', '.join(VERSIONS)}, got {version!r}")
        lpips = _import_lpips()
        alex_path = find_weights(ALEXNET_WEIGHTS, explicit_path=alexnet_weights, env_var=ALEXNET_ENV)
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(pretrained=False, net="alex", version=version, pnet_rand=True, verbose=False)

        heads_path = Path(lpips.__file__).resolve().parent / "weights" / f"v{version}" / "alex.pth"
        heads = load_state_dict_file(heads_path)
        missing, unexpected = model.load_state_dict(heads, strict=False)
        # Not in the heads file: the trunk (loaded below), the fixed scaling buffers, and
        # `lins.*`, a second name for the same `lin0..lin4` modules.
        if unexpected or any(not k.startswith(("net.", "scaling_layer.", "lins.")) for k in missing):
            raise SPGNetError(f"{heads_path}: LPIPS heads do not fit (missing {missing}, unexpected {unexpected})")

        import torchvision

        alexnet = torchvision.models.alexnet(weights=None)
        load_exact(alexnet, alex_path)
        # lpips splits alexnet.features into slices whose children keep their indices.
        for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for name, child in part.named_children():
                child.load_state_dict(alexnet.features[int(name)].state_dict())

        self.model = model.eval().requires_grad_(False)
        self.version = version
        self.alexnet_weights = str(alex_path)

    def train(self, mode: bool = True) -> LPIPS:  # a fixed metric: dropout stays off
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` pairs in [-1, 1] -> ``(B,)`` distances."""
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two (B, 3, H, W) batches, got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.model(x.float(), y.float()).flatten()

    def masked(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mask-LPIPS ``(B,)``: LPIPS of ``x·mask`` and ``y·mask``; mask ``(B, H, W)``."""
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        m = mask.to(x.dtype)
        return self.forward(x * m, y * m)


class _LPIPSMetricBase(MeanMetric):
    def __init__(self, version: str = "0.1", alexnet_weights=None, device=None, net: LPIPS | None = None):
        super().__init__()
        self.net = net if net is not None else LPIPS(version, alexnet_weights)
        if device is not None:
            self.net.to(device)
        self.protocol = {"images": "8-bit scaled to [-1, 1]", "net": "alex", "version": self.net.version,
                         "alexnet_weights": Path(self.net.alexnet_weights).name}

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device


@register_metric(
    "lpips",
    matches="lpips.LPIPS(net='alex', version='0.1') on [-1, 1] images, mean over images",
    inputs=("fake", "real"),
    weights=(ALEXNET_WEIGHTS,),
    higher_is_better=False,
)
class LPIPSMetric(_LPIPSMetricBase):
    def per_image(self, batch) -> torch.Tensor:
        fake, real = self._inputs(batch)
        dev = self._device()
        return self.net(quantize(fake).to(dev), quantize(real).to(dev))


@register_metric(
    "mask_lpips",
    matches="GFLA metrics.py calculate_mask_lpips: [-1, 1] images times the produce_ma_mask of the target "
    "pose, then LPIPS (alex, v0.1)",
    inputs=("fake", "real", "target_kp"),
    weights=(ALEXNET_WEIGHTS,),
    higher_is_better=False,
)
class MaskLPIPSMetric(_LPIPSMetricBase):
    def __init__(self, version: str = "0.1", alexnet_weights=None, device=None, net: LPIPS | None = None,
                 point_radius: float = 4.0):
        super().__init__(version, alexnet_weights, device, net)
        self.point_radius = point_radius
        self.protocol["mask"] = f"produce_ma_mask of target keypoints, radius {point_radius}, 5x5 closing"

    def per_image(self, batch) -> torch.Tensor:
        fake, real, kp = self._inputs(batch)
        dev = self._device()
        mask = pose_masks(kp.to(dev), fake.shape[-2], fake.shape[-1], self.point_radius)
        return self.net.masked(quantize(fake).to(dev), quantize(real).to(dev), mask)
