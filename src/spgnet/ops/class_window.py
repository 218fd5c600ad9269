"""Exact kernels of the ACE layers over a *hard* one-hot parsing (docs/design.md §12,
docs/performance.md). Each has a plain PyTorch equivalent, named in its docstring, that
tests/ops compares it with.

* :func:`class_window_sum` — ``conv2d(one_hot(labels), kernels)`` as table look-ups: a
  conv over a one-hot map is a sum of kernel columns, ``Σ_d U[:, label(p + d), d]``, and in
  a window that holds one class (most pixels) it is one look-up of ``Σ_d U[:, c, d]``.
* :func:`class_rows` — per-class rows broadcast to every pixel, with a GEMM backward.
* :func:`shell_conv` — a k×k conv evaluated only at some pixels (near class borders),
  re-gathering its im2col columns in the backward instead of keeping them.

:class:`ClassWindowLayout` holds the index structures these share for one label map and
kernel size (which pixels are interior, the band's window labels, the border shell).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from spgnet.utils.torch_utils import no_autocast


def hard_labels(parsing: torch.Tensor) -> torch.Tensor | None:
    """Labels ``(B, H, W)`` int64 of a hard one-hot ``(B, K, H, W)`` (K for a pixel with no
    class, e.g. zero padding), or None if some pixel is not a 0/1 one-hot vector."""
    if parsing.numel() == 0:
        return None
    peak = parsing.amax(1)
    hard = (parsing.amin() >= 0) & ((peak == 0) | (peak == 1)).all() & (parsing.sum(1) == peak).all()
    if not bool(hard):
        return None
    return torch.where(peak > 0, parsing.argmax(1), parsing.shape[1])


class ClassWindowLayout:
    """Index structures of :func:`class_window_sum` for one label map and kernel size.

    ``labels`` ``(B, h, w)`` int64 in ``[0, K]`` (K = no class); positions outside the map
    count as class K (zero padding). A pixel is *interior* when its k×k window holds one
    class; the others form the *band* (near class borders and the image edge).
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, kernel: int):
        b, h, w = labels.shape
        r, kk, rows = kernel // 2, kernel * kernel, num_classes + 1
        self.shape, self.kernel, self.rows, self.num_classes = (b, h, w), kernel, rows, num_classes
        self.labels = labels
        padded = F.pad(labels, (r, r, r, r), value=num_classes)
        as_float = padded[:, None].float()  # exact for class indices
        uniform = (F.max_pool2d(as_float, kernel, 1) == -F.max_pool2d(-as_float, kernel, 1))[:, 0]
        sample = torch.arange(b, device=labels.device)
        self.class_rows = (sample.view(b, 1, 1) * rows + labels).reshape(-1)  # (N,) row of (b, label)
        self.interior = uniform.reshape(b, h * w)  # (B, hw) bool
        self.band = (~uniform).reshape(-1).nonzero().squeeze(1)  # (N_b,)
        # window labels of band pixels, read from the padded map: (N_b, k²)
        window = padded.reshape(-1)[self.windows(self.band)]
        sample = self.band // (h * w)
        # table row of (sample, class, offset d); stored (k², N_b) so each offset is contiguous
        self.band_rows = ((sample[:, None] * rows + window) * kk + torch.arange(kk, device=labels.device)).t().contiguous()
        self._onehots: dict = {}
        self._shell = None

    def windows(self, pixels: torch.Tensor) -> torch.Tensor:
        """Flat indices ``(n, k²)`` of the k×k windows of ``pixels`` (flat indices into
        ``(B, h, w)``) in the map zero-padded by k//2 on each side, ``(B, h+2r, w+2r)``."""
        b, h, w = self.shape
        r, k = self.kernel // 2, self.kernel
        sample, rem = pixels // (h * w), pixels % (h * w)
        pw = w + 2 * r
        corner = sample * (h + 2 * r) * pw + (rem // w) * pw + rem % w
        offsets = (torch.arange(k, device=pixels.device).view(-1, 1) * pw + torch.arange(k, device=pixels.device))
        return corner[:, None] + offsets.reshape(-1)

    def onehot(self, dtype: torch.dtype, interior_only: bool) -> torch.Tensor:
        """``(B, K+1, hw)``: 1 at (b, label(p), p) for every pixel p, or for interior ones only
        (the backward of the per-class gathers: per-class sums of a gradient as one GEMM)."""
        key = (dtype, interior_only)
        if key not in self._onehots:
            b, h, w = self.shape
            onehot = torch.zeros(b, self.rows, h * w, device=self.labels.device, dtype=dtype)
            value = self.interior.to(dtype) if interior_only else torch.ones(b, h * w, device=onehot.device, dtype=dtype)
            self._onehots[key] = onehot.scatter_(1, self.labels.reshape(b, 1, h * w), value.reshape(b, 1, h * w))
        return self._onehots[key]

    def shell(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels within 2·(k//2) of another class or of the image edge, and their k×k
        windows: ``(shell (N_s,), windows (N_s, k²))``. Elsewhere a k×k conv of anything
        computed by a k×k conv of the one-hot is constant per class."""
        if self._shell is None:
            b, h, w = self.shape
            r2, size = 2 * (self.kernel // 2), 4 * (self.kernel // 2) + 1
            # outside = K + 1: unlike "no class" inside the map, it is zero padding for every conv
            padded = F.pad(self.labels, (r2, r2, r2, r2), value=self.num_classes + 1)[:, None].float()
            deep = (F.max_pool2d(padded, size, 1) == -F.max_pool2d(-padded, size, 1)).reshape(-1)
            shell = (~deep).nonzero().squeeze(1)
            self._shell = (shell, self.windows(shell))
        return self._shell


def _full_precision(method):
    """Run an autograd Function's forward or backward with autocast off: these kernels mix
    index ops with matmuls, whose autocast dtypes would not match (and a backward may run
    inside an autocast region when ``backward()`` is called in one)."""
    @functools.wraps(method)
    def run(ctx, first, *args):
        with no_autocast(first.device):
            return method(ctx, first, *args)
    return run


class _ClassRows(torch.autograd.Function):
    """out[(b, p)] = table[b, label(p)]: ``(B, K+1, O)`` -> ``(B·h·w, O)``; the backward sums
    the gradient per class with one GEMM per sample (an index_add would serialise on the
    few classes)."""

    @staticmethod
    @_full_precision
    def forward(ctx, table: torch.Tensor, layout: ClassWindowLayout) -> torch.Tensor:
        ctx.layout = layout
        b, rows, o = table.shape
        return table.reshape(b * rows, o).index_select(0, layout.class_rows)

    @staticmethod
    @_full_precision
    def backward(ctx, grad: torch.Tensor):
        layout = ctx.layout
        b, h, w = layout.shape
        return torch.bmm(layout.onehot(grad.dtype, False), grad.reshape(b, h * w, -1)), None


class _ShellConv(torch.autograd.Function):
    """A k×k conv evaluated at n pixels only: hidden rows ``(B·h·w, C)`` (channels last),
    windows ``(n, k²)`` into the zero-padded map, matrix ``(k²·C, O)`` -> ``(n, O)``.

    Forward: gather the n windows (im2col, ``(n, k²·C)``) and one matmul. The columns are
    not kept for the backward, which re-gathers them from ``hidden`` (kept by the ReLU
    before anyway): k² floats per border pixel and channel less activation memory. The
    input gradient is one index_add of all n·k² rows into the padded map."""

    @staticmethod
    @_full_precision
    def forward(ctx, hidden: torch.Tensor, windows: torch.Tensor, matrix: torch.Tensor,
                shape: tuple[int, int, int], radius: int) -> torch.Tensor:
        ctx.save_for_backward(hidden, windows, matrix)
        ctx.shape, ctx.radius = shape, radius
        return _ShellConv.columns(hidden, windows, shape, radius) @ matrix

    @staticmethod
    def padded(hidden: torch.Tensor, shape: tuple[int, int, int], r: int) -> torch.Tensor:
        b, h, w = shape
        return F.pad(hidden.view(b, h, w, -1), (0, 0, r, r, r, r)).view(-1, hidden.shape[1])

    @staticmethod
    def columns(hidden: torch.Tensor, windows: torch.Tensor, shape: tuple[int, int, int], r: int) -> torch.Tensor:
        n, kk = windows.shape
        return _ShellConv.padded(hidden, shape, r).index_select(0, windows.reshape(-1)).view(n, kk * hidden.shape[1])

    @staticmethod
    @_full_precision
    def backward(ctx, grad: torch.Tensor):
        hidden, windows, matrix = ctx.saved_tensors
        (b, h, w), r = ctx.shape, ctx.radius
        grad_hidden = grad_matrix = None
        if ctx.needs_input_grad[0]:
            n, kk = windows.shape
            c = hidden.shape[1]
            g = (grad @ matrix.t()).reshape(n * kk, c)
            padded = g.new_zeros(b * (h + 2 * r) * (w + 2 * r), c).index_add_(0, windows.reshape(-1), g)
            grad_hidden = padded.view(b, h + 2 * r, w + 2 * r, c)[:, r:r + h, r:r + w].reshape(-1, c)
        if ctx.needs_input_grad[2]:
            grad_matrix = _ShellConv.columns(hidden, windows, ctx.shape, r).t() @ grad
        return grad_hidden, None, grad_matrix, None, None


class _ClassWindowSum(torch.autograd.Function):
    """out[(b, p)] = Σ_d table[b, label(p + d), d]; interior pixels: one row of the per-class sums."""

    @staticmethod
    @_full_precision
    def forward(ctx, table: torch.Tensor, layout: ClassWindowLayout) -> torch.Tensor:
        b, rows, kk, o = table.shape
        ctx.layout = layout
        flat = table.reshape(b * rows * kk, o)
        out = table.sum(2).reshape(b * rows, o).index_select(0, layout.class_rows)
        if layout.band.numel():
            # band rows, read as (N_b, k²) row indices
            out.index_copy_(0, layout.band, F.embedding_bag(layout.band_rows.t(), flat, mode="sum"))
        return out

    @staticmethod
    @_full_precision
    def backward(ctx, grad: torch.Tensor):
        layout = ctx.layout
        b, h, w = layout.shape
        kk = layout.kernel ** 2
        o = grad.shape[1]
        # interior pixels feed every offset d of their class: one GEMM per sample
        per_class = torch.bmm(layout.onehot(grad.dtype, True), grad.reshape(b, h * w, o))  # (B, K+1, O)
        grad_table = per_class[:, :, None, :].expand(b, layout.rows, kk, o).contiguous()
        if layout.band.numel():
            band_grad = grad.index_select(0, layout.band)
            flat = grad_table.view(-1, o)
            for d in range(kk):  # kernel offsets (k² ≤ 49), not pixels or classes
                flat.index_add_(0, layout.band_rows[d], band_grad)
        return grad_table, None


def class_window_sum(table: torch.Tensor, layout: ClassWindowLayout) -> torch.Tensor:
    """Convolution of a hard one-hot parsing with per-sample kernels, as table look-ups.

    ``table`` ``(B, K+1, k², O)``: ``table[b, c, dy·k + dx]`` is the kernel column of class c
    at offset (dy, dx) (row K, "no class", must be zero). Returns ``(B·h·w, O)`` float rows
    (channels last) equal to ``conv2d(one_hot(labels), kernels, padding=k//2)``.
    """
    return _ClassWindowSum.apply(table, layout)


def class_rows(table: torch.Tensor, layout: ClassWindowLayout) -> torch.Tensor:
    """``out[(b, p)] = table[b, label(p)]``: per-class rows ``(B, K+1, O)`` broadcast to every
    pixel, ``(B·h·w, O)`` channels last. Plain path: ``table.gather`` by the label map."""
    return _ClassRows.apply(table, layout)


def shell_conv(hidden: torch.Tensor, windows: torch.Tensor, matrix: torch.Tensor,
               shape: tuple[int, int, int], radius: int) -> torch.Tensor:
    """A k×k conv evaluated at the n pixels whose windows are ``windows`` ``(n, k²)``:
    ``hidden`` rows ``(B·h·w, C)`` (channels last), ``matrix`` ``(k²·C, O)`` (im2col order:
    offsets row-major, then channels) -> ``(n, O)``. Plain path: ``F.conv2d`` at every pixel,
    then pick the n rows."""
    return _ShellConv.apply(hidden, windows, matrix, shape, radius)


__all__ = ["ClassWindowLayout", "class_rows", "class_window_sum", "hard_labels", "shell_conv"]
