"""All-pairs SSIM equal to scikit-image's defaults, computed in batches with torch.

`skimage.metrics.structural_similarity(a, b, data_range=255)` filters with a 7x7 uniform
window, uses the sample covariance (N/(N-1)), K1=0.01, K2=0.03 and averages the SSIM map over
the pixels at least 3 away from the border (where the window fits inside the image). Here the
per-image local means and variances are computed once, in float64, with the same scipy filter
skimage uses; per pair only the cross term (local covariance) and the SSIM map are computed, in
float32 on mean-centred images, for tiles of pairs at a time, tiles shared among threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter

WIN = 7
PAD = (WIN - 1) // 2
COV_NORM = WIN * WIN / (WIN * WIN - 1)
C1 = (0.01 * 255.0) ** 2
C2 = (0.03 * 255.0) ** 2
TILE = (2, 16)  # a tile of 32 pairs per torch call: ~2 MB buffers for 128x128 images


@dataclass(frozen=True)
class _Stats:
    """Per-image float32 tensors; local statistics cover the cropped (h, w) region."""

    shape: tuple[int, int]  # (H, W) of the images
    centred: torch.Tensor  # (N, H * W) image minus its global mean, flattened
    mu: torch.Tensor  # (N, h, w) local mean
    mu_centred: torch.Tensor  # (N, h, w) local mean of `centred`
    b1: torch.Tensor  # (N, h, w) mu**2 + C1 / 2, so that B1 = b1[i] + b1[j]
    b2: torch.Tensor  # (N, h, w) var + C2 / 2, so that B2 = b2[i] + b2[j]


class _Workspace:
    """Buffers for one tile of pairs, allocated once per thread and reused."""

    def __init__(self, shape: tuple[int, int]) -> None:
        pairs = TILE[0] * TILE[1]
        flat = pairs * shape[0] * shape[1]
        crop = (pairs, shape[0] - WIN + 1, shape[1] - WIN + 1)
        self.prod, self.rows, self.twos, self.fours = (torch.empty(flat) for _ in range(4))
        self.a1, self.a2, self.den, self.b2 = (torch.empty(crop).view(-1) for _ in range(4))
        self.c1 = torch.full(crop[1:], C1)
        self.c2 = torch.full(crop[1:], C2)


def pairwise_ssim(images: np.ndarray) -> np.ndarray:
    """SSIM of every pair of (N, H, W) images in [0, 255]: the symmetric (N, N) matrix, diagonal 1.

    Equal to scikit-image's `structural_similarity(a, b, data_range=255)` up to float32 rounding
    of the per-pair terms (below 1e-4, tested). Uses `torch.get_num_threads()` threads.
    """
    if images.ndim != 3 or min(images.shape[1:]) < WIN:
        raise ValueError(f"expected (N, H, W) images with H, W >= {WIN}, got {images.shape}")
    stats = _image_stats(images)
    n = images.shape[0]
    out = np.zeros((n, n))
    tasks = [
        (slice(i, min(i + TILE[0], n)), slice(j, min(j + TILE[1], n)))
        for i in range(0, n, TILE[0])
        for j in range(i, n, TILE[1])
    ]

    def run(part: list[tuple[slice, slice]]) -> None:
        ws = _Workspace(stats.shape)
        for rows, cols in part:
            out[rows, cols] = _ssim_tile(stats, ws, rows, cols).numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one tile per thread: no intra-op synchronisation
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, [tasks[k::threads] for k in range(threads)]))
    finally:
        torch.set_num_threads(threads)
    upper = np.triu(out, 1)
    return upper + upper.T + np.eye(n)


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
        shape=images.shape[1:],
        centred=f32(x - means).flatten(1),
        mu=f32(mu),
        mu_centred=f32(mu - means),
        b1=f32(mu * mu + C1 / 2),
        b2=f32(var + C2 / 2),
    )


def _window_sum(x: torch.Tensor, step: int, ws: _Workspace, out: torch.Tensor) -> torch.Tensor:
    """out[k] = sum(x[k + m * step] for m < 7) wherever defined, by doubling (7 = 2 + 2 + 2 + 1)."""
    n = x.shape[0]
    twos = torch.add(x[: n - step], x[step:], out=ws.twos[: n - step])
    fours = torch.add(twos[: n - 3 * step], twos[2 * step :], out=ws.fours[: n - 3 * step])
    sixes = fours[: n - 5 * step].add_(twos[4 * step :])
    return torch.add(sixes[: n - 6 * step], x[6 * step :], out=out[: n - 6 * step])


def _ssim_tile(s: _Stats, ws: _Workspace, rows: slice, cols: slice) -> torch.Tensor:
    """Mean SSIM of every image in `rows` against every image in `cols`: (rows, cols) float64."""
    (height, width), (h, w) = s.shape, ws.c1.shape
    grid = (rows.stop - rows.start, cols.stop - cols.start)
    pairs = grid[0] * grid[1]

    def out(buf: torch.Tensor, *shape: int) -> torch.Tensor:
        return buf[: pairs * math.prod(shape)].view(*grid, *shape)

    def row(x: torch.Tensor) -> torch.Tensor:
        return x[rows, None]

    def col(x: torch.Tensor) -> torch.Tensor:
        return x[None, cols]

    prod = torch.mul(row(s.centred), col(s.centred), out=out(ws.prod, height * width))
    sums = _window_sum(prod.view(-1), 1, ws, ws.rows)
    _window_sum(sums, width, ws, ws.prod)  # the 7x7 window sums, over prod
    window = ws.prod[: pairs * height * width].view(*grid, height, width)[..., :h, :w]
    # A2 = 2 * cov + C2 with cov = COV_NORM * (window / WIN**2 - mu_centred_i * mu_centred_j)
    a2 = torch.addcmul(
        ws.c2, row(s.mu_centred), col(s.mu_centred), value=-2 * COV_NORM, out=out(ws.a2, h, w)
    )
    a2.add_(window, alpha=2 * COV_NORM / WIN**2)
    a1 = torch.addcmul(ws.c1, row(s.mu), col(s.mu), value=2.0, out=out(ws.a1, h, w))
    den = torch.add(row(s.b1), col(s.b1), out=out(ws.den, h, w))
    den.mul_(torch.add(row(s.b2), col(s.b2), out=out(ws.b2, h, w)))
    return a1.div_(den).mul_(a2).sum((2, 3)).double() / (h * w)
