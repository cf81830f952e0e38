"""Clinical-prior lesion masks (ClinicalPrior): deformed ellipses sized from real lesions.

Coordinates are pixel edges: an image spans [0, W] x [0, H], pixel (i, j) has its centre at
(i + 0.5, j + 0.5). A lesion's semi-axes (a, b) are half the width and half the height of the
bounding box of a mask's largest component, axis-aligned like the drawn ellipse, so a measured
lesion redrawn at the same resolution has its size. Measure the masks at the resolution the
synthetic masks are drawn at. Size bins are terciles by rank of the measured areas a * b.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import draw, measure

from meddap.common.errors import MeddapError
from meddap.common.labels import LESION_CLASSES

SIZES = ("small", "medium", "large")


def lesion_sizes(masks: list[np.ndarray]) -> np.ndarray:
    """Semi-axes (n, 2) = (a, b) in px of the largest component of each non-empty mask."""
    sizes = []
    for mask in masks:
        regions = measure.regionprops(measure.label(np.asarray(mask) > 0))
        if regions:
            top, left, bottom, right = max(regions, key=lambda r: r.area).bbox
            sizes.append(((right - left) / 2, (bottom - top) / 2))
    if not sizes:
        raise MeddapError(f"none of the {len(masks)} masks has a lesion to measure")
    return np.array(sizes, dtype=float)


def _terciles(sizes: np.ndarray) -> dict[str, np.ndarray]:
    """The measured (a, b) split into thirds by rank of area a * b, smallest first."""
    sizes = np.asarray(sizes, dtype=float)
    if sizes.ndim != 2 or sizes.shape[1] != 2 or len(sizes) < len(SIZES):
        raise MeddapError(f"sizes must be at least 3 rows of (a, b), got shape {sizes.shape}")
    order = np.argsort(sizes.prod(axis=1), kind="stable")
    return dict(zip(SIZES, np.array_split(sizes[order], len(SIZES)), strict=True))


def size_bins(sizes: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per size bin, the range (min, max) of sqrt(a * b) in px of the lesions in that third."""
    return {
        size: (float(np.sqrt(part.prod(axis=1)).min()), float(np.sqrt(part.prod(axis=1)).max()))
        for size, part in _terciles(sizes).items()
    }


def _semi_axes(
    label: str, size: str, shape: tuple[int, int], sizes: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    """(a, b) of a measured lesion of bin `size` that fits `shape`, oriented for `label`.

    Benign: a > b (wider than tall), malignant: a < b; an equal pair gets half a pixel longer.
    """
    if label not in LESION_CLASSES:
        raise MeddapError(f"label {label!r} has no lesion mask: use one of {LESION_CLASSES}")
    if size not in SIZES:
        raise MeddapError(f"size {size!r} is unknown: use one of {SIZES}")
    short, long = np.sort(_terciles(sizes)[size], axis=1).T
    long = np.maximum(long, short + 0.5)
    a, b = (long, short) if label == "benign" else (short, long)
    fits = (2 * a <= shape[1]) & (2 * b <= shape[0])
    if not fits.any():
        raise MeddapError(
            f"no {size} {label} ellipse fits shape {shape}: the smallest needs "
            f"{2 * a.min():g}x{2 * b.min():g} px (WxH)"
        )
    pick = rng.integers(fits.sum())
    return float(a[fits][pick]), float(b[fits][pick])


def _elastic(mask: np.ndarray, sigma: float, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Simard's elastic deformation: uniform(-1, 1) fields, Gaussian(sigma) smoothed, x alpha."""
    dy, dx = (alpha * ndimage.gaussian_filter(rng.uniform(-1, 1, mask.shape), sigma) for _ in "yx")
    rows, cols = np.indices(mask.shape, dtype=float)
    warped = ndimage.map_coordinates(mask.astype(float), [rows + dy, cols + dx], order=1)
    return warped > 0.5


def clinical_mask(
    label: str,
    size: str,
    shape: tuple[int, int],
    sizes: np.ndarray,
    sigma: float,
    alpha: float,
    seed: int,
) -> np.ndarray:
    """A bool (H, W) lesion mask: an ellipse of a measured `size` lesion, elastically deformed.

    The semi-axes are those of one lesion of the bin that fits, drawn at random; the centre is
    uniform with a <= x0 <= W - a, b <= y0 <= H - b, so the ellipse lies inside the image before
    the deformation (sigma: smoothness in px, alpha: displacement scale; alpha = 0 keeps it).
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    a, b = _semi_axes(label, size, shape, sizes, rng)
    x0, y0 = rng.uniform(a, width - a), rng.uniform(b, height - b)
    mask = np.zeros(shape, dtype=bool)
    mask[draw.ellipse(y0 - 0.5, x0 - 0.5, b, a, shape=shape)] = True
    return _elastic(mask, sigma, alpha, rng)
