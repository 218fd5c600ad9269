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

Host syncs: the band and the shell have data-dependent sizes, which the host must know.
:func:`read_counts` reads the sizes of many layouts (and the flag of
:func:`hard_labels_and_flag`) in one device-to-host copy; the indices are then
``torch.nonzero_static`` of those sizes (exact, no further sync). A layout whose sizes
were not read first falls back to ``nonzero`` (one sync each).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from spgnet.utils.torch_utils import no_autocast


def hard_labels_and_flag(parsing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``(B, H, W)`` int64 of a one-hot ``(B, K, H, W)`` (K for a pixel with no class,
    e.g. zero padding) and a 0-dim bool tensor: whether every pixel is a 0/1 one-hot vector
    (the labels mean nothing otherwise). No host sync: the caller reads the flag, e.g.
    with :func:`read_counts`. ``parsing`` must not be empty."""
    peak = parsing.amax(1)
    hard = (parsing.amin() >= 0) & ((peak == 0) | (peak == 1)).all() & (parsing.sum(1) == peak).all()
    return torch.where(peak > 0, parsing.argmax(1), parsing.shape[1]), hard


def hard_labels(parsing: torch.Tensor) -> torch.Tensor | None:
    """Labels ``(B, H, W)`` int64 of a hard one-hot ``(B, K, H, W)`` (K for a pixel with no
    class, e.g. zero padding), or None if some pixel is not a 0/1 one-hot vector (one host
    sync: the flag of :func:`hard_labels_and_flag`)."""
    if parsing.numel() == 0:
        return None
    labels, hard = hard_labels_and_flag(parsing)
    return labels if bool(hard) else None


def _indices(mask: torch.Tensor, count: int | None) -> torch.Tensor:
    """Flat indices of the True entries of a 1-D ``mask``, in order: ``nonzero_static`` when
    ``count`` (their number, read before) is known — the same indices without a host sync —
    else ``nonzero`` (one sync)."""
    if count is None:
        return mask.nonzero().squeeze(1)
    return torch.nonzero_static(mask, size=count).squeeze(1)


class ClassWindowLayout:
    """Index structures of :func:`class_window_sum` for one label map and kernel size.

    ``labels`` ``(B, h, w)`` int64 in ``[0, K]`` (K = no class); positions outside the map
    count as class K (zero padding). A pixel is *interior* when its k×k window holds one
    class; the others form the *band* (near class borders and the image edge).
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, kernel: int):
        b, h, w = labels.shape
        r, rows = kernel // 2, num_classes + 1
        self.shape, self.kernel, self.rows, self.num_classes = (b, h, w), kernel, rows, num_classes
        self.labels = labels
        padded = F.pad(labels, (r, r, r, r), value=num_classes)
        as_float = padded[:, None].float()  # exact for class indices
        uniform = (F.max_pool2d(as_float, kernel, 1) == -F.max_pool2d(-as_float, kernel, 1))[:, 0]
        sample = torch.arange(b, device=labels.device)
        self.class_rows = (sample.view(b, 1, 1) * rows + labels).reshape(-1)  # (N,) row of (b, label)
        self.interior = uniform.reshape(b, h * w)  # (B, hw) bool
        self._padded = padded
        self._band_mask = (~uniform).reshape(-1)
        self._band: tuple[torch.Tensor, torch.Tensor] | None = None
        self._shell_mask: torch.Tensor | None = None
        self._onehots: dict = {}
        self._shell = None
        self.band_count: int | None = None  # set by read_counts (else nonzero finds it)
        self.shell_count: int | None = None

    @property
    def band(self) -> torch.Tensor:
        """Flat indices ``(N_b,)`` of the band pixels (not interior)."""
        return self._band_indices()[0]

    @property
    def band_rows(self) -> torch.Tensor:
        """Table rows ``(k², N_b)`` of (sample, window class, offset d) of every band pixel,
        stored so that each offset is contiguous."""
        return self._band_indices()[1]

    def _band_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._band is None:
            b, h, w = self.shape
            kk = self.kernel * self.kernel
            band = _indices(self._band_mask, self.band_count)
            window = self._padded.reshape(-1)[self.windows(band)]  # window labels (N_b, k²)
            sample = band // (h * w)
            rows = ((sample[:, None] * self.rows + window) * kk + torch.arange(kk, device=band.device)).t().contiguous()
            self._band = (band, rows)
        return self._band

    def counts(self, shell: bool) -> list[torch.Tensor]:
        """0-dim device tensors: the number of band pixels and, with ``shell``, of shell
        pixels (for :func:`read_counts`; no host sync)."""
        out = [self._band_mask.sum()]
        if shell:
            out.append(self.shell_mask().sum())
        return out

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

    def shell_mask(self) -> torch.Tensor:
        """Flat bool mask ``(B·h·w,)`` of the pixels of :meth:`shell`."""
        if self._shell_mask is None:
            r2, size = 2 * (self.kernel // 2), 4 * (self.kernel // 2) + 1
            # outside = K + 1: unlike "no class" inside the map, it is zero padding for every conv
            padded = F.pad(self.labels, (r2, r2, r2, r2), value=self.num_classes + 1)[:, None].float()
            deep = (F.max_pool2d(padded, size, 1) == -F.max_pool2d(-padded, size, 1)).reshape(-1)
            self._shell_mask = ~deep
        return self._shell_mask

    def shell(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels within 2·(k//2) of another class or of the image edge, and their k×k
        windows: ``(shell (N_s,), windows (N_s, k²))``. Elsewhere a k×k conv of anything
        computed by a k×k conv of the one-hot is constant per class."""
        if self._shell is None:
            shell = _indices(self.shell_mask(), self.shell_count)
            self._shell = (shell, self.windows(shell))
        return self._shell


def read_counts(layouts, shell: bool, extra=()) -> list[int]:
    """Read the index sizes of every layout in ``layouts`` (band, and shell with ``shell``)
    together with the 0-dim tensors ``extra`` in **one** host sync (a single device-to-host
    copy), store the sizes on the layouts (their indices then need no sync) and return the
    values of ``extra`` as ints."""
    layouts = list(layouts)
    values = [t.reshape(()).to(torch.int64) for t in extra]
    for layout in layouts:
        values += layout.counts(shell)
    if not values:
        return []
    read = torch.stack(values).tolist()
    extra_values, read = read[:len(extra)], read[len(extra):]
    for layout in layouts:
        layout.band_count = read.pop(0)
        if shell:
            layout.shell_count = read.pop(0)
    return extra_values


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


__all__ = ["ClassWindowLayout", "class_rows", "class_window_sum", "hard_labels", "hard_labels_and_flag",
           "read_counts", "shell_conv"]
