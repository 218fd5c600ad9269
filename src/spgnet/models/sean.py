"""ACE: SEAN region-adaptive normalization (paper Eq. 6-7; SEAN, Zhu et al. CVPR 2020).

For a feature map ``x`` ``(B, C, H, W)``, the target parsing one-hot ``S`` ``(B, K, H, W)``
(K = 20 CIHP classes) and per-class style codes ``z`` ``(B, K, D)``:

* ``n = BN_noaffine(x + s ⊙ ε)`` with ``ε ~ N(0, 1)`` drawn per pixel and shared over
  channels, ``s`` a per-channel scale initialised to 0 (the official ``noise_var``;
  noise is added in eval mode too, as in the official code);
* style branch: ``μ_k = ReLU(W_k z_k + b_k)`` (20 Linear(D, D) layers, stored stacked as
  one ``(K, D, D)`` weight), broadcast over class k's region of S, then k×k convs give
  ``γ_s, β_s``;
* semantic branch (SPADE, hidden 64): ``γ_o, β_o`` from S by conv-ReLU-conv;
* blend ``γ = σ(θ_γ) γ_s + (1 - σ(θ_γ)) γ_o`` (θ scalar, init 0 so 0.5), same for β;
* ``out = n · (1 + γ) + β``.

How it is computed (exact restructurings; docs/design.md §12, docs/performance.md):

* **Style identity.** The broadcast map ``M = Σ_k S_k ⊗ μ_k`` is piecewise constant, so
  ``conv(M, W) = conv(S, U)`` with per-sample kernels ``U[b, :, k] = W · μ_{b,k}``: the
  style convs see the K class masks instead of the D-channel map.
* **Class-window sums.** A conv over a *hard* one-hot map is a sum of kernel columns:
  ``conv(S, U)(p) = Σ_d U[:, label(p + d), d]``. :func:`class_window_sum` evaluates it
  with table look-ups, and in a window where every pixel has one class (most pixels) it
  is one look-up of ``Σ_d U[:, c, d]``. The SPADE branch's first conv (over S too) rides
  in the same table. Soft or differentiated parsings (the ``joint`` scheme's
  straight-through one-hot) and ``torch.compile`` take the conv route instead.
* **Fused γ/β.** ``γ`` and ``β`` of each branch come from one conv with 2C outputs; the
  blend weights σ(θ) and 1 - σ(θ) and the ``1 +`` of ``1 + γ`` are folded into the conv
  weights and biases, so ACE ends in one ``addcmul``.
* **Border shell (CPU).** The SPADE hidden map is constant inside a class region, so its
  γ|β conv is a per-class constant wherever the 2k-1 window holds a single class; it is
  computed as one GEMM over the windows of the other pixels only (about 20 % of the
  pixels at the finest scale of a 256×176 person).

:class:`SemanticCondition` (its ``route``) picks among these per forward pass.

:class:`SemanticCondition` carries the parsing and codes through the decoder and caches
what every ACE at one resolution shares (resized parsing, look-up indices).
``factorized=False`` selects the plain formulation (conv over the D-channel map), kept
for comparison. :class:`BatchNormNoCondition` is the plain-BN stand-in of the ``baseline``
variants, with the same call signature.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from spgnet.ops.class_window import (ClassWindowLayout, class_rows, class_window_sum, hard_labels_and_flag,
                                     read_counts, shell_conv)
from spgnet.utils.torch_utils import no_autocast


def resize_parsing(parsing: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a one-hot parsing ``(B, K, h, w)`` to ``size`` (official)."""
    if tuple(parsing.shape[-2:]) == tuple(size):
        return parsing
    return F.interpolate(parsing, size=size, mode="nearest")


def _compiling() -> bool:
    return torch.compiler.is_compiling()


ROUTES = ("conv", "lookup", "shell")
SHELL_MAX_FRACTION = 0.5  # beyond it the dense conv is cheaper than gathering windows


class SemanticCondition:
    """Target parsing ``(B, K, H, W)`` and style codes ``(B, K, D)`` (or None) shared by every
    ACE of one forward pass, with per-resolution caches (resized parsing, look-up layouts).

    ``route`` (one of :data:`ROUTES`, or None to choose) says how every ACE computes its
    modulation; all give the same result:

    * ``"conv"`` — convolutions over the one-hot (style: grouped conv with per-sample
      kernels); the only route for a soft parsing or one that needs a gradient.
    * ``"lookup"`` — :func:`class_window_sum` for the convs over the parsing, a dense
      SPADE γ|β conv. Needs a hard one-hot with data (not ``meta``), no gradient, and
      eager mode (not under ``torch.compile``); otherwise ``"conv"`` runs.
    * ``"shell"`` — look-ups, and the SPADE γ|β conv only near class borders
      (:meth:`ACE._semantic_shell`); same conditions.

    None: ``"shell"`` on CPU when at most :data:`SHELL_MAX_FRACTION` of a resolution's
    pixels are near a border (a GEMM over a few windows beats the dense conv there),
    else ``"lookup"`` (GPUs run the dense conv faster than the gathers), when eligible.

    Host syncs: whether the parsing is a hard one-hot and the sizes of the look-up indices
    are read from the device together, once (:func:`~spgnet.ops.class_window.read_counts`):
    at the first look-up, for the requested resolution and, with ``prefetch`` (the
    generator's decoder), every doubling of it up to the parsing's size at the same
    kernel. A decoder that asks for exactly those resolutions costs one sync per forward;
    any other resolution one more when first asked for.
    """

    def __init__(self, parsing: torch.Tensor, codes: torch.Tensor | None = None, route: str | None = None,
                 prefetch: bool = True):
        if route is not None and route not in ROUTES:
            raise ValueError(f"SemanticCondition: route {route!r} is not one of {ROUTES} (or None)")
        self.parsing = parsing
        self.codes = codes
        self.route = route
        self.prefetch = prefetch
        self._onehot: dict[tuple[int, int], torch.Tensor] = {}
        self._layouts: dict[tuple[int, int, int], ClassWindowLayout] = {}
        self._labels: torch.Tensor | None | bool = False  # False: not decided yet

    @property
    def num_classes(self) -> int:
        return self.parsing.shape[1]

    def onehot(self, size: tuple[int, int]) -> torch.Tensor:
        """The parsing resized (nearest) to ``size``: ``(B, K, h, w)``."""
        size = tuple(size)
        if size not in self._onehot:
            self._onehot[size] = resize_parsing(self.parsing, size)
        return self._onehot[size]

    def labels(self) -> torch.Tensor | None:
        """Hard labels ``(B, H, W)`` if the look-up route applies, else None."""
        if self._labels is False:
            self._build(())
        return self._labels

    def _eligible(self) -> bool:
        # meta tensors (FLOP counting without data) cannot be inspected: conv route. Under
        # torch.compile too: the look-up routes read the parsing on the host and index with
        # data-dependent sizes (a graph break at every ACE, a recompile per border size)
        return not (self.route == "conv" or self.parsing.requires_grad or _compiling() or self.parsing.is_meta
                    or self.parsing.numel() == 0)

    def _shell_possible(self) -> bool:
        """Whether :meth:`use_shell` may need the shell's size."""
        return self.route == "shell" or (self.route is None and self.parsing.device.type == "cpu")

    def _build(self, keys) -> None:
        """Decide the route (when still open) and build the layouts of ``keys`` ``(h, w,
        kernel)``, reading the hard-one-hot flag and every index size in one host sync."""
        labels, flag = self._labels, None
        if labels is False:
            if not self._eligible():
                self._labels = None
                return
            labels, flag = hard_labels_and_flag(self.parsing.detach())
        if labels is None:
            return
        layouts = {}
        for h, w, kernel in keys:
            resized = labels
            if tuple(labels.shape[-2:]) != (h, w):  # same pixels as resize_parsing picks
                resized = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
            layouts[(h, w, kernel)] = ClassWindowLayout(resized, self.num_classes, kernel)
        read = read_counts(layouts.values(), self._shell_possible(), [flag] if flag is not None else [])
        if flag is not None:
            self._labels = labels if read[0] else None
            if not read[0]:
                return
        self._layouts.update(layouts)

    def use_shell(self, layout: ClassWindowLayout) -> bool:
        """Look-up routes: whether the SPADE γ|β conv runs on border pixels only."""
        if self.route is not None:
            return self.route == "shell"
        if self.parsing.device.type != "cpu":
            return False
        b, h, w = layout.shape
        count = layout.shell_count if layout.shell_count is not None else layout.shell()[0].numel()
        return count <= SHELL_MAX_FRACTION * b * h * w

    def layout(self, size: tuple[int, int], kernel: int) -> ClassWindowLayout | None:
        key = (int(size[0]), int(size[1]), kernel)
        if key not in self._layouts and self._labels is not None:
            keys = [key]
            if self.prefetch and not self._layouts:  # the first look-up: the decoder's other resolutions too
                full_h, full_w = self.parsing.shape[-2:]
                h, w = 2 * key[0], 2 * key[1]
                while h <= full_h and w <= full_w:
                    keys.append((h, w, kernel))
                    h, w = 2 * h, 2 * w
            self._build(keys)
        return self._layouts.get(key) if self._labels is not None else None


class SemanticModulation(nn.Module):
    """SPADE branch: ``(B, K, H, W)`` parsing -> ``γ_o, β_o`` each ``(B, C, H, W)``."""

    def __init__(self, channels: int, label_nc: int, hidden: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, parsing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(parsing)
        return self.gamma(h), self.beta(h)


class ACE(nn.Module):
    """SEAN normalization of ``channels`` channels (see the module docstring).

    ``use_style=False`` keeps only the semantic branch (SPADE variant): no per-class
    Linear layers, no style convs and no blending parameters.
    """

    def __init__(self, channels: int, *, label_nc: int = 20, style_dim: int = 128, kernel_size: int = 5,
                 spade_hidden: int = 64, use_style: bool = True, factorized: bool = True,
                 noise_layout: str = "device"):
        super().__init__()
        self.channels = channels
        self.label_nc = label_nc
        self.use_style = use_style
        self.factorized = factorized
        self.noise_layout = noise_layout
        self.noise_scale = nn.Parameter(torch.zeros(channels))
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.semantic = SemanticModulation(channels, label_nc, spade_hidden, kernel_size)
        if use_style:
            # fc_k of the paper for all K classes: weight (K, out, in), bias (K, out).
            self.style_fc_weight = nn.Parameter(torch.empty(label_nc, style_dim, style_dim))
            self.style_fc_bias = nn.Parameter(torch.empty(label_nc, style_dim))
            self.style_gamma = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.style_beta = nn.Conv2d(style_dim, channels, kernel_size, padding=kernel_size // 2)
            self.blend_gamma = nn.Parameter(torch.zeros(1))
            self.blend_beta = nn.Parameter(torch.zeros(1))
            self.reset_style_fc()

    def reset_style_fc(self) -> None:
        """nn.Linear's default initialisation, per class: U(-1/sqrt(D), 1/sqrt(D))."""
        bound = 1.0 / math.sqrt(self.style_fc_weight.shape[-1])
        with torch.no_grad():
            self.style_fc_weight.uniform_(-bound, bound)
            self.style_fc_bias.uniform_(-bound, bound)

    def class_styles(self, codes: torch.Tensor) -> torch.Tensor:
        """``μ_k = ReLU(fc_k(z_k))``: codes ``(B, K, D)`` -> ``(B, K, D)`` (one batched op)."""
        return F.relu(torch.einsum("bki,koi->bko", codes, self.style_fc_weight) + self.style_fc_bias)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """SPADE γ|β conv weight ``(2C, hidden, k, k)`` scaled by 1 - σ(θ), style γ|β conv weight
        ``(2C, D, k, k)`` scaled by σ(θ) (None without style), and the combined bias ``(2C,)``
        including the ``1 +`` of ``1 + γ``."""
        sem, c = self.semantic, self.channels
        weight = torch.cat((sem.gamma.weight, sem.beta.weight), 0)
        bias = torch.cat((sem.gamma.bias, sem.beta.bias), 0)
        style_weight = None
        if self.use_style:
            alpha = torch.cat((torch.sigmoid(self.blend_gamma).expand(c), torch.sigmoid(self.blend_beta).expand(c)))
            style_weight = torch.cat((self.style_gamma.weight, self.style_beta.weight), 0) * alpha.view(-1, 1, 1, 1)
            weight = weight * (1 - alpha).view(-1, 1, 1, 1)
            bias = bias * (1 - alpha) + torch.cat((self.style_gamma.bias, self.style_beta.bias), 0) * alpha
        one = torch.cat((torch.ones(c, device=bias.device, dtype=bias.dtype), torch.zeros_like(bias[:c])))
        return weight, style_weight, bias + one

    def modulation(self, cond: SemanticCondition, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        """``cat(1 + γ, β)`` ``(B, 2C, h, w)`` for the feature size ``size`` (blended branches)."""
        weight, style_weight, bias = self._folded()
        shared = self.semantic.shared[0]
        pad = weight.shape[-1] // 2
        # style vectors and look-up sums in float32 (float64 for a float64 model)
        acc = torch.promote_types(bias.dtype, torch.float32)
        mu = self.class_styles(cond.codes.to(acc)) if self.use_style else None  # (B, K, D)
        layout = cond.layout(size, shared.kernel_size[0]) if self.factorized else None
        if layout is not None:
            return self._modulation_lookup(layout, weight, style_weight, bias, mu, dtype, cond.use_shell(layout))
        parsing = cond.onehot(size).to(dtype)
        b, k, h, w = parsing.shape
        hidden = F.relu(F.conv2d(parsing, shared.weight.to(dtype), shared.bias.to(dtype), padding=pad))
        out = F.conv2d(hidden, weight.to(dtype), bias.to(dtype), padding=pad)
        if style_weight is None:
            return out
        mu = mu.to(dtype)
        if self.factorized:  # conv(M, W) = conv(S, U): per-sample kernels as one grouped conv
            kernels = torch.einsum("odyx,bkd->bokyx", style_weight.to(dtype), mu)  # (B, 2C, K, k, k)
            style = F.conv2d(parsing.reshape(1, b * k, h, w), kernels.reshape(-1, k, *weight.shape[-2:]),
                             padding=pad, groups=b).view(b, -1, h, w)
        else:
            broadcast = torch.einsum("bkhw,bkd->bdhw", parsing, mu)  # (B, D, H, W)
            style = F.conv2d(broadcast, style_weight.to(dtype), padding=pad)
        return out + style

    def _modulation_lookup(self, layout: ClassWindowLayout, weight: torch.Tensor, style_weight: torch.Tensor | None,
                           bias: torch.Tensor, mu: torch.Tensor | None, dtype: torch.dtype,
                           shell: bool) -> torch.Tensor:
        """The same through :func:`class_window_sum` (hard one-hot parsing); with ``shell``
        the SPADE γ|β conv runs only near class borders (:meth:`ClassWindowLayout.shell`)."""
        shared = self.semantic.shared[0]
        b, h, w = layout.shape
        kk = shared.kernel_size[0] * shared.kernel_size[1]
        hid = shared.out_channels
        acc = mu.dtype if mu is not None else torch.promote_types(bias.dtype, torch.float32)
        with no_autocast(bias.device):  # look-ups and their sums in float32
            # table[b, class, offset] = [SPADE shared kernel column | style kernel column W·μ]
            shared_columns = shared.weight.to(acc).permute(1, 2, 3, 0).reshape(self.label_nc, kk, hid)
            columns = [shared_columns.expand(b, -1, -1, -1)]
            if style_weight is not None:
                columns.append(torch.einsum("odyx,bkd->bkyxo", style_weight.to(acc), mu).reshape(
                    b, self.label_nc, kk, -1))
            table = F.pad(torch.cat(columns, -1), (0, 0, 0, 0, 0, 1))  # + the zero row of "no class"
            rows = class_window_sum(table, layout)  # (B·h·w, hid [+ 2C]) channels last
            pre, style = rows.split((hid, rows.shape[1] - hid), dim=1)
            hidden = F.relu(pre + shared.bias.to(acc))
        if shell:
            out = self._semantic_shell(hidden, shared_columns, layout, weight.to(acc), bias.to(acc))
            if style_weight is not None:
                out = out + style
            return out.view(b, h, w, -1).permute(0, 3, 1, 2).to(dtype)
        hidden = hidden.to(dtype).view(b, h, w, hid).permute(0, 3, 1, 2)
        out = F.conv2d(hidden, weight.to(dtype), bias.to(dtype), padding=weight.shape[-1] // 2)
        if style_weight is None:
            return out
        return out + style.view(b, h, w, -1).permute(0, 3, 1, 2).to(out.dtype)

    def _semantic_shell(self, hidden: torch.Tensor, shared_columns: torch.Tensor, layout: ClassWindowLayout,
                        weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """SPADE γ|β conv of ``hidden`` rows ``(B·h·w, hid)`` -> ``(B·h·w, 2C)``: a per-class
        constant away from class borders (the hidden map is constant there), one GEMM over
        the border pixels' windows elsewhere."""
        b, h, w = layout.shape
        r = weight.shape[-1] // 2
        with no_autocast(bias.device):
            # deep inside class c every hidden pixel is ReLU(Σ_d shared column + bias)
            hidden_class = F.relu(F.pad(shared_columns.sum(1), (0, 0, 0, 1)) + self.semantic.shared[0].bias.to(bias.dtype))
            per_class = hidden_class @ weight.sum((2, 3)).t() + bias  # (K+1, 2C)
            out = class_rows(per_class.expand(b, -1, -1), layout)
        shell, windows = layout.shell()
        if shell.numel():
            # im2col rows: offsets row-major, then channels -> (k²·hid, 2C) matrix
            matrix = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0])
            # index_put, not index_copy: the latter's autograd keeps the (N_s, 2C) source alive
            out = out.index_put((shell,), shell_conv(hidden, windows, matrix, (b, h, w), r).to(bias.dtype)
                                + bias)
        return out

    def draw_noise(self, b: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Per-pixel N(0, 1) noise ``(B, 1, H, W)``, shared over channels, drawn as
        ``noise_layout`` says (``model.generator.noise_layout``)."""
        if self.noise_layout == "official":  # the official draw: CPU generator, (B, W, H, 1), float32
            return torch.randn(b, w, h, 1).transpose(1, 3).to(device=device, dtype=dtype)
        return torch.randn(b, 1, h, w, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, parsing: torch.Tensor | SemanticCondition,
                codes: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, C, H, W)``; parsing one-hot ``(B, K, h, w)`` (resized nearest to H×W) and
        codes ``(B, K, D)`` (required with the style branch), or a :class:`SemanticCondition`
        holding both -> ``(B, C, H, W)``."""
        cond = parsing if isinstance(parsing, SemanticCondition) else SemanticCondition(parsing, codes, prefetch=False)
        b, c, h, w = x.shape
        if c != self.channels or cond.parsing.shape[:2] != (b, self.label_nc):
            raise ValueError(f"ACE({self.channels}): got x {tuple(x.shape)}, parsing {tuple(cond.parsing.shape)}")
        if self.use_style and (cond.codes is None or cond.codes.shape[:2] != (b, self.label_nc)):
            codes = cond.codes
            raise ValueError(f"ACE({self.channels}): style codes (B, {self.label_nc}, D) required, "
                             f"got {None if codes is None else tuple(codes.shape)}")
        noise = self.draw_noise(b, h, w, x.device, x.dtype)
        normalized = self.norm(torch.addcmul(x, noise, self.noise_scale.view(1, c, 1, 1).to(x.dtype)))
        scale, shift = self.modulation(cond, (h, w), normalized.dtype).chunk(2, dim=1)  # 1 + γ, β
        return torch.addcmul(shift, normalized, scale)


class BatchNormNoCondition(nn.BatchNorm2d):
    """Affine BatchNorm with ACE's call signature (the ``baseline`` variants)."""

    def forward(self, x: torch.Tensor, parsing=None, codes: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


def make_norm(channels: int, *, conditional: bool, **ace_kwargs) -> nn.Module:
    """ACE (``conditional``) or plain BatchNorm, both called as ``norm(x, parsing, codes)``
    (``parsing`` a one-hot tensor or a :class:`SemanticCondition`)."""
    return ACE(channels, **ace_kwargs) if conditional else BatchNormNoCondition(channels)


__all__ = ["ACE", "SemanticModulation", "SemanticCondition", "BatchNormNoCondition", "make_norm",
           "resize_parsing", "ROUTES"]
