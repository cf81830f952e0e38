"""All-pairs SSIM equal to scikit-image's defaults, computed in batches with torch.

`skimage.metrics.structural_similarity(a, b, data_range=255)` filters with a 7x7 uniform
window, uses the sample covariance (N/(N-1)), K1=0.01, K2=0.03 and averages the SSIM map over
the pixels at least 3 away from the border (where the window fits inside the image). Here the
per-image local means and variances are computed once, in float64, with the same scipy filter
skimage uses; only the cross term (local covariance of each pair) is computed per pair, in float32
on mean-centred images, for a row of pairs at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import uniform_filter

from meddap.errors import MeddapError

WIN = 7
PAD = (WIN - 1) // 2
COV_NORM = WIN * WIN / (WIN * WIN - 1)
C1 = (0.01 * 255.0) ** 2
C2 = (0.03 * 255.0) ** 2
BLOCK = 32  # pairs per batch: a (BLOCK, H, W) float32 tensor of 128x128 images stays in cache


@dataclass(frozen=True)
class _Stats:
    """Per-image tensors on the cropped region (float32), indexed by image."""

    centred: torch.Tensor  # image minus its global mean, full size
    mu: torch.Tensor  # local mean
    mu_centred: torch.Tensor  # local mean of `centred`
    b1: torch.Tensor  # mu**2 + C1 / 2, so that B1 = b1[i] + b1[j]
    b2: torch.Tensor  # var + C2 / 2, so that B2 = b2[i] + b2[j]


def load_gray(paths: Sequence[str | os.PathLike[str]], size: int) -> np.ndarray:
    """Read images as grayscale ("L"), resized bilinearly to (size, size): (N, size, size) uint8."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for k, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                gray = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
                out[k] = np.asarray(gray)
        except (OSError, ValueError) as err:
            raise MeddapError(f"image {path} could not be read as an image file: {err}") from err
    return out


def pairwise_ssim(images: np.ndarray) -> np.ndarray:
    """SSIM of every pair of (N, H, W) images in [0, 255]: the symmetric (N, N) matrix, diagonal 1.

    Equal to scikit-image's `structural_similarity(a, b, data_range=255)` up to float32 rounding
    of the cross term (below 1e-4, tested).
    """
    if images.ndim != 3 or min(images.shape[1:]) < WIN:
        raise ValueError(f"expected (N, H, W) images with H, W >= {WIN}, got {images.shape}")
    stats = _image_stats(images)
    n = images.shape[0]
    out = np.eye(n)
    for i in range(n - 1):
        for start in range(i + 1, n, BLOCK):
            stop = min(start + BLOCK, n)
            values = _ssim_block(stats, i, slice(start, stop)).numpy()
            out[i, start:stop] = values
            out[start:stop, i] = values
    return out


def _crop(x: np.ndarray) -> np.ndarray:
    return x[:, PAD:-PAD, PAD:-PAD]


def _image_stats(images: np.ndarray) -> _Stats:
    """Local means and sample variances with scipy's uniform filter, as skimage computes them."""
    x = images.astype(np.float64)
    size = (1, WIN, WIN)
    mu = uniform_filter(x, size=size)
    var = COV_NORM * (uniform_filter(x * x, size=size) - mu * mu)
    means = x.mean(axis=(1, 2), keepdims=True)
    mu, var = _crop(mu), _crop(var)

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return _Stats(
        centred=f32(x - means),
        mu=f32(mu),
        mu_centred=f32(mu - means),
        b1=f32(mu * mu + C1 / 2),
        b2=f32(var + C2 / 2),
    )


def _window_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sums of WIN consecutive elements along `dim` (valid positions only)."""
    n = x.shape[dim] - WIN + 1
    total = x.narrow(dim, 0, n).clone()
    for shift in range(1, WIN):
        total += x.narrow(dim, shift, n)
    return total


def _ssim_block(s: _Stats, i: int, js: slice) -> torch.Tensor:
    """Mean SSIM of image i against images js, as float64."""
    window = _window_sum(_window_sum(s.centred[js] * s.centred[i], -1), -2)
    # A2 = 2 * cov + C2 with cov = COV_NORM * (window / WIN**2 - mu_centred_i * mu_centred_j)
    a2 = s.mu_centred[js] * (-2 * COV_NORM) * s.mu_centred[i]
    a2.add_(window, alpha=2 * COV_NORM / WIN**2).add_(C2)
    a1 = (s.mu[js] * (2 * s.mu[i])).add_(C1)
    den = (s.b1[js] + s.b1[i]).mul_(s.b2[js] + s.b2[i])
    ssim_sum = torch.einsum("bhw,bhw->b", a1.div_(den), a2)
    return ssim_sum.double() / (a2.shape[1] * a2.shape[2])
