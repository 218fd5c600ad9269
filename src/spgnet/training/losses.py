"""Training losses of SPGNet (paper Sec. 3.3–3.4; docs/design.md §9).

Stage 2 (generator) minimises ``λ_l1·L1 + λ_perc·L_perc + λ_adv·L_adv`` and stage 1
``λ_ce·CE``; :class:`spgnet.config.LossWeights` holds the λ of the official release.

Checked against the official code (github cszy98/SPGNet):

* **Perceptual loss** (``models/modules.py`` ``VGGLoss``, content mode): torchvision's
  ImageNet VGG19 ``features`` cut into the slices ``[0:2] [2:7] [7:12] [12:21] [21:30]``,
  i.e. outputs relu1_1, relu2_1, relu3_1, relu4_1, relu5_1; inputs mapped from [-1, 1]
  to ImageNet normalisation ``((x+1)/2 - mean) / std``; loss ``Σ_i w_i·mean|φ_i(x) - φ_i(y)|``
  with ``w_i = 0.125`` (``options/pose_transfer_options.py``: ``vgg_content_mode='balance'``
  overrides the ``1/32 … 1`` default of the class). The official per-sample mean followed
  by the batch mean equals the plain mean used here (all samples have the same size).
* **Adversarial loss**: ``gan_type='dcgan'`` by default — a sigmoid PatchGAN with
  ``binary_cross_entropy``, which is ``mode="vanilla"`` here on logits (numerically
  safer, same value). The discriminator loss is ``0.5·(L(D(real), 1) + L(D(fake), 0))``
  and is *also* scaled by ``loss_weight_gan`` before its backward
  (``pose_transfer_model.py`` ``backward_D``); the GAN term is switched on from epoch 6
  of the 1-based epoch loop (``epoch_add_gan=6``).
* **L1**: ``F.l1_loss`` mean over all pixels, λ = 1; perceptual λ = 1; adversarial λ = 0.01.
* **Stage-1 CE** (not in the release; paper: λ_ce = 10): per-pixel cross-entropy over the
  20 CIHP classes, mean over pixels.

Shapes: images ``(B, 3, H, W)`` in [-1, 1]; discriminator logits any shape (PatchGAN
``(B, 1, h, w)``); parsing logits ``(B, 20, H, W)`` with integer labels ``(B, H, W)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from spgnet import SPGNetError
from spgnet.config import GAN_MODES

VGG19_WEIGHTS = "vgg19-dcbb9e9d.pth"
VGG19_ENV = "SPGNET_VGG19_WEIGHTS"
# torchvision's VGG19 ("E") configuration: conv widths per block, "M" = 2x2 max pool.
_VGG19_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names() -> list[str]:
    """Names of ``torchvision.models.vgg19().features[i]`` by index i:
    ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, …, relu5_4, pool5``."""
    names, block, idx = [], 1, 1
    for item in _VGG19_CFG:
        if item == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


def _vgg19_features(num_layers: int) -> nn.Sequential:
    """The first ``num_layers`` modules of torchvision's VGG19 ``features`` (same indices,
    so its state-dict keys ``features.<i>.weight`` fit), ReLUs not in place so that a
    captured activation is never overwritten."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = item
    return nn.Sequential(*layers[:num_layers])


class VGG19Perceptual(nn.Module):
    """Perceptual (VGG content) loss ``Σ_i w_i · mean|φ_i(x) − φ_i(y)|`` with frozen VGG19.

    ``x, y``: ``(B, 3, H, W)`` in [-1, 1] (``y`` the target); returns a scalar.

    Weights: torchvision's ``vgg19-dcbb9e9d.pth`` (or a safetensors copy) from
    ``weights_path``, ``$SPGNET_VGG19_WEIGHTS``, ``$SPGNET_WEIGHTS_DIR`` or the torch hub
    cache (:func:`spgnet.utils.weights.find_weights`); when absent,
    :class:`~spgnet.utils.weights.MissingWeightsError` names the file. ``allow_random=True``
    is for tests and FLOP counting only: when no file is found (and no ``weights_path``
    was given) it builds the same network with seeded random weights, warns, and sets
    ``weights_source`` to ``"random"``; such a loss is not a perceptual loss.
    """

    def __init__(self, weights_path: str | Path | None = None,
                 layers: Sequence[str] = DEFAULT_LAYERS,
                 weights: Sequence[float] = (0.125,) * 5,
                 allow_random: bool = False, seed: int = 0):
        super().__init__()
        names = vgg19_layer_names()
        layers = tuple(layers)
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise SPGNetError(f"VGG19 layers: unknown {unknown or 'empty list'} (choose from {', '.join(names)})")
        if len(weights) != len(layers):
            raise SPGNetError(f"VGG19 perceptual loss: {len(layers)} layers but {len(weights)} weights")
        indices = [names.index(name) for name in layers]
        if indices != sorted(set(indices)):
            raise SPGNetError(f"VGG19 layers must be distinct and in network order, got {list(layers)}")

        from spgnet.utils.weights import MissingWeightsError, find_weights, load_state_dict_file

        try:
            path = find_weights(VGG19_WEIGHTS, explicit_path=weights_path, env_var=VGG19_ENV)
        except MissingWeightsError:
            if not allow_random or weights_path is not None:  # a path given explicitly must exist
                raise
            path = None
        with torch.random.fork_rng(devices=[]):  # random fallback must not move the global RNG
            torch.manual_seed(seed)
            features = _vgg19_features(indices[-1] + 1)
            if path is None:  # torchvision's VGG init
                for module in features.modules():
                    if isinstance(module, nn.Conv2d):
                        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                        nn.init.zeros_(module.bias)
        if path is None:
            warnings.warn(f"{VGG19_WEIGHTS} not found: the perceptual loss uses RANDOM VGG19 weights "
                          "(allow_random=True; for tests and FLOP counting only)", stacklevel=2)
        else:
            _load_vgg19_features(features, load_state_dict_file(path), path)

        self.features = features.eval().requires_grad_(False)
        self.layers = layers
        self.layer_indices = tuple(indices)
        self.layer_weights = tuple(float(w) for w in weights)
        self.weights_source = str(path) if path is not None else "random"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGG19Perceptual:  # a fixed feature extractor
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> ImageNet-normalised input of torchvision's VGG."""
        return ((x + 1) * 0.5 - self.mean) / self.std

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations at ``self.layers`` for ``x`` ``(B, 3, H, W)`` in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Perceptual expects (B, 3, H, W) images, got {tuple(x.shape)}")
        out, h = [], self.normalize(x)
        wanted = iter(self.layer_indices)
        target = next(wanted)
        for i, module in enumerate(self.features):
            h = module(h)
            if i == target:
                out.append(h)
                target = next(wanted, -1)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"VGG19Perceptual: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
        loss = x.new_zeros(())
        for w, fx, fy in zip(self.layer_weights, self.extract(x), self.extract(y)):
            loss = loss + w * F.l1_loss(fx, fy)
        return loss


def _load_vgg19_features(features: nn.Sequential, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load the ``features.*`` entries of a torchvision VGG19 state dict into the truncated
    feature stack; the deeper layers and the classifier are ignored, anything else is an error."""
    needed = {f"features.{k}" for k in features.state_dict()}
    missing = sorted(needed - set(state))
    foreign = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    if missing or foreign:
        detail = f"missing {missing[:6]}" if missing else f"unexpected keys {foreign[:6]}"
        raise SPGNetError(f"{path}: not a torchvision VGG19 state dict ({detail})")
    try:
        features.load_state_dict({k.removeprefix("features."): state[k] for k in needed}, strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])
        raise SPGNetError(f"{path}: VGG19 weights have the wrong shapes ({detail})") from None




class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator logits (no sigmoid in the discriminator).

    * ``"vanilla"`` (official ``gan_type='dcgan'``): binary cross-entropy with logits,
      target 1 for real, 0 for fake — the non-saturating generator loss ``-log σ(D(G))``.
    * ``"lsgan"``: mean squared error to the targets 1 / 0.
    * ``"hinge"``: discriminator ``mean(relu(1 - D(real)))``, ``mean(relu(1 + D(fake)))``;
      generator ``-mean(D(fake))``.

    ``forward(logits, target_is_real, for_discriminator=True)`` returns the mean over all
    logits; a list of logit tensors (multi-scale discriminators) gives the mean of the
    per-tensor losses.
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise SPGNetError(f"GAN loss mode must be one of {', '.join(GAN_MODES)}, got {mode!r}")
        self.mode = mode
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def _single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        logits = logits.float()  # losses in fp32 under autocast
        if self.mode == "hinge":
            if for_discriminator:
                return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()
            if not target_is_real:
                raise ValueError("hinge generator loss is defined for target_is_real=True only")
            return -logits.mean()
        target = torch.full_like(logits, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], target_is_real: bool,
                for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(logits, torch.Tensor):
            return self._single(logits, target_is_real, for_discriminator)
        losses = [self._single(t, target_is_real, for_discriminator) for t in logits]
        return torch.stack(losses).mean()

    def discriminator_loss(self, real_logits, fake_logits) -> torch.Tensor:
        """``0.5 · (L(D(real), real) + L(D(fake), fake))`` — the official ``loss_D``."""
        return 0.5 * (self(real_logits, True) + self(fake_logits, False))

    def generator_loss(self, fake_logits) -> torch.Tensor:
        """The generator's adversarial term ``L(D(G(·)), real)``."""
        return self(fake_logits, True, for_discriminator=False)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (official ``F.l1_loss(img_out, img_tar)``)."""
    if pred.shape != target.shape:
        raise ValueError(f"l1: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    return F.l1_loss(pred, target)


def parsing_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Stage-1 per-pixel cross-entropy, mean over pixels.

    ``logits``: ``(B, C, H, W)`` (C = 20 CIHP classes); ``target``: integer labels
    ``(B, H, W)`` (or ``(B, 1, H, W)``) in ``[0, C)``.
    """
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"parsing_ce: logits (B, C, H, W) and labels (B, H, W) expected, "
                         f"got {tuple(logits.shape)} and {tuple(target.shape)}")
    if target.is_floating_point():
        raise ValueError("parsing_ce: target must hold integer class labels, not a float tensor")
    return F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training must stop rather than train through it."""


def check_finite(losses: Mapping[str, torch.Tensor | float], step: int | None = None) -> None:
    """Raise :class:`NonFiniteLossError` naming every non-finite loss (one device sync)."""
    if not losses:
        return
    names = list(losses)
    tensors = [torch.as_tensor(losses[n]).detach().float().reshape(()) for n in names]
    device = tensors[0].device
    values = torch.stack([t.to(device) for t in tensors]).cpu().tolist()
    bad = [f"{n}={v:g}" for n, v in zip(names, values) if not math.isfinite(v)]
    if bad:
        where = f" at step {step}" if step is not None else ""
        raise NonFiniteLossError(f"non-finite loss{where}: {', '.join(bad)}")


__all__ = [
    "DEFAULT_LAYERS", "GANLoss", "NonFiniteLossError",
    "VGG19Perceptual", "VGG19_WEIGHTS", "check_finite", "l1", "parsing_ce", "vgg19_layer_names",
]
