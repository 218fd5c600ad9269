"""Fréchet Inception Distance (Heusel et al. 2017): statistics, distance, cache.

``frechet_distance`` matches pytorch-fid's ``calculate_frechet_distance``:
``‖μ1 − μ2‖² + tr(Σ1) + tr(Σ2) − 2·tr(sqrtm(Σ1·Σ2))`` with ``scipy.linalg.sqrtm``;
if the square root is not finite, ``eps·I`` (eps = 1e-6) is added to both covariances
and it is recomputed; an imaginary part is dropped when the diagonal's is within 1e-3
of 0, otherwise it is an error.

Statistics match pytorch-fid's ``calculate_activation_statistics`` — ``μ = mean``,
``Σ = np.cov(features, rowvar=False)`` (ddof 1) over **every** image: no dropped
remainder batch (the older TTUR-derived scripts in PATN/GFLA dropped it). They are
accumulated as float64 running sums (shifted by the first batch's mean for accuracy)
so 100k images need no 100k×2048 feature matrix.

docs/design.md §10 protocol: pool3 features of the generated test images against the real
*training* images, 8-bit images as saved (``spgnet.evaluation.metrics.quantize``), Inception variant and resize
as stated by ``InceptionFeatures.protocol``. Statistics of a real image set are cached
(``cached_statistics``) in an ``.npz`` keyed by a hash of the sorted file list (path,
size, modification time) and the protocol, written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from spgnet import SPGNetError
from spgnet.utils.io import atomic_write_bytes, load_image
from spgnet.evaluation.metrics.quantize import quantize
from spgnet.evaluation.metrics.inception import VARIANTS, InceptionFeatures
from spgnet.evaluation.metrics.registry import Metric, register_metric


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (pytorch-fid's formula)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"frechet_distance: covariances differ in shape: {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@dataclass
class FIDStatistics:
    """Mean ``(D,)`` and covariance ``(D, D)`` of a feature set, float64."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    protocol: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> None:
        buf = io.BytesIO()
        np.savez(buf, mu=self.mu, sigma=self.sigma, count=np.int64(self.count),
                 protocol=np.array(json.dumps(self.protocol, sort_keys=True)))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FIDStatistics:
        try:
            with np.load(path, allow_pickle=False) as f:
                protocol = json.loads(str(f["protocol"])) if "protocol" in f else {}
                count = int(f["count"]) if "count" in f else -1
                return cls(f["mu"].astype(np.float64), f["sigma"].astype(np.float64), count, protocol)
        except FileNotFoundError:
            raise SPGNetError(f"{path}: FID statistics file not found") from None
        except (OSError, ValueError, KeyError) as exc:
            raise SPGNetError(f"{path}: not a FID statistics .npz ({exc})") from None


class FeatureStatistics:
    """Running mean and covariance (ddof 1) of feature batches ``(B, D)``."""

    def __init__(self) -> None:
        self.count = 0
        self._shift: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> None:
        f = features.detach().to(torch.float64)
        if f.dim() != 2:
            raise ValueError(f"FeatureStatistics: expected (B, D) features, got {tuple(f.shape)}")
        if f.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = f.mean(dim=0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64, device=f.device)
        centred = f - self._shift
        self._sum += centred.sum(dim=0)
        self._outer += centred.T @ centred
        self.count += f.shape[0]

    def result(self, protocol: dict | None = None) -> FIDStatistics:
        if self.count < 2:
            raise SPGNetError(f"FID statistics need at least 2 images, got {self.count}")
        mean_c = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(mean_c, mean_c)) / (self.count - 1)
        mu = (self._shift + mean_c).cpu().numpy()
        return FIDStatistics(mu, cov.cpu().numpy(), self.count, dict(protocol or {}))


def _as_batch(item) -> torch.Tensor:
    """One image (uint8 ``(H, W, 3)`` array or float ``(3, H, W)`` tensor in [-1, 1]) or
    a batch ``(B, 3, H, W)`` -> float ``(B, 3, H, W)`` in [-1, 1]."""
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise ValueError(f"compute_statistics: numpy images must be uint8 (H, W, 3), got {item.dtype} {item.shape}")
        return torch.from_numpy(np.array(item)).permute(2, 0, 1).unsqueeze(0).float().div(127.5).sub(1.0)
    t = torch.as_tensor(item)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"compute_statistics: expected (3, H, W) or (B, 3, H, W) tensors, got {tuple(t.shape)}")
    return t.float()


def compute_statistics(
    images: Iterable,
    model,
    batch_size: int = 50,
    device: str | torch.device | None = None,
) -> FIDStatistics:
    """Statistics of the features of every image in ``images`` (see ``_as_batch`` for
    the accepted items); images are grouped into batches of ``batch_size`` (a size
    change starts a new batch) and the last, partial batch is used too."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    stats = FeatureStatistics()
    pending: list[torch.Tensor] = []
    pending_n = 0

    def flush() -> None:
        nonlocal pending, pending_n
        if pending:
            batch = torch.cat(pending).to(device)
            for start in range(0, batch.shape[0], batch_size):
                stats.update(model(batch[start : start + batch_size]))
        pending, pending_n = [], 0

    for item in images:
        batch = _as_batch(item)
        if pending and batch.shape[1:] != pending[0].shape[1:]:
            flush()
        pending.append(batch)
        pending_n += batch.shape[0]
        if pending_n >= batch_size:
            flush()
    flush()
    return stats.result(getattr(model, "protocol", {}))


def statistics_cache_key(files: Sequence[str | os.PathLike], protocol: dict) -> str:
    """SHA-256 of the sorted (resolved path, size, mtime) list and the protocol."""
    entries = []
    for f in sorted(str(Path(p).resolve()) for p in files):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            raise SPGNetError(f"{f}: image file not found") from None
        entries.append([f, st.st_size, st.st_mtime_ns])
    blob = json.dumps({"files": entries, "protocol": protocol}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def cached_statistics(
    files: Sequence[str | os.PathLike],
    model,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 50,
    device: str | torch.device | None = None,
) -> FIDStatistics:
    """Statistics of the image files, read from / written to ``cache_dir`` when given
    (``fid-stats-<key>.npz``). Images are decoded as 8-bit RGB."""
    if not files:
        raise SPGNetError("FID: the real image set is empty")
    protocol = dict(getattr(model, "protocol", {}))
    cache_path = None
    if cache_dir is not None:
        key = statistics_cache_key(files, protocol)
        cache_path = Path(cache_dir) / f"fid-stats-{key[:24]}.npz"
        if cache_path.exists():
            return FIDStatistics.load(cache_path)
    ordered = sorted(files, key=lambda p: str(p))
    stats = compute_statistics((load_image(p) for p in ordered), model, batch_size, device)
    if cache_path is not None:
        stats.save(cache_path)
    return stats


@register_metric(
    "fid",
    matches="pytorch-fid: InceptionV3 pool3 with the TF 2015-12-05 weights, bilinear resize to 299, every "
    "image, calculate_frechet_distance against real-image statistics",
    inputs=("fake",),
    weights=(VARIANTS["pytorch-fid"][0],),
    higher_is_better=False,
)
class FIDMetric(Metric):
    """FID of the generated images against precomputed real statistics
    (``cached_statistics`` of the real training images, computed with the same model)."""

    def __init__(
        self,
        real_stats: FIDStatistics | str | os.PathLike,
        model: InceptionFeatures | None = None,
        variant: str = "pytorch-fid",
        weights: str | os.PathLike | None = None,
        allow_random: bool = False,
        resize: str = "bilinear",
        device: str | torch.device | None = None,
    ):
        super().__init__()
        self.real = real_stats if isinstance(real_stats, FIDStatistics) else FIDStatistics.load(real_stats)
        self.model = model if model is not None else InceptionFeatures(variant, weights, allow_random, resize)
        if device is not None:
            self.model.to(device)
        if self.real.protocol and self.real.protocol != self.model.protocol:
            raise SPGNetError(
                f"FID: real statistics were computed with {self.real.protocol}, the model uses {self.model.protocol}"
            )
        self.protocol = {**self.model.protocol, "real_images": self.real.count, "remainder": "kept"}
        self.reset()

    def update(self, batch) -> None:
        (fake,) = self._inputs(batch)
        device = next(self.model.parameters()).device
        self.fake.update(self.model(quantize(fake).to(device)))

    def compute(self) -> dict[str, float]:
        gen = self.fake.result(self.model.protocol)
        return {"fid": frechet_distance(gen.mu, gen.sigma, self.real.mu, self.real.sigma), "count": gen.count}

    def reset(self) -> None:
        self.fake = FeatureStatistics()
