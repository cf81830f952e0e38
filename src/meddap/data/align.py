"""Aligned similarity of two images: a crop/scale/shift estimated, the overlap scored by SSIM.

A copy of an image is modelled as an axis-aligned crop and rescale of it: b's native pixel
(x, y) lies at a's native pixel (scale_x * x + shift_x, scale_y * y + shift_y). Three scale
hypotheses are tried: a crop (b keeps a's pixel pitch, scale 1), a rescaled copy (b spans a's
field of view) and a zoomed crop (b's pitch scaled by the factor within SEARCH either way that
scores best at half size: a scan in SCAN steps, refined by REFINE). For each, b is rendered at
a's pitch, the shift is found by phase correlation (scikit-image) and the overlap of the two is
scored with scikit-image's `structural_similarity`; the hypothesis with the higher SSIM wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.metrics import structural_similarity
from skimage.registration import phase_cross_correlation
from skimage.transform import downscale_local_mean

MIN_OVERLAP = 0.5  # overlap area below this fraction of the smaller image: no placement
WIN = 7  # SSIM window: an overlap narrower than this cannot be scored
SUBPIXEL = 8  # the shift is estimated at half size to 1/SUBPIXEL pixel, applied bilinearly
SEARCH = (1.08, 1.35)  # zoom factors searched either way (BUSI's rescaled copies: 1.16-1.24);
# nearer 1 the crop hypothesis holds, and a fitted zoom would lift neighbouring frames
_OUT = np.exp(np.linspace(*np.log(SEARCH), 7))  # steps of 3.8 %
SCAN = np.concatenate([1 / _OUT[::-1], _OUT])
REFINE = (1.02, 1.01)  # then the best factor times each step, either way, if it scores better


@dataclass(frozen=True)
class Prepared:
    """One image ready for alignment: pixels with longest side `size`, and its native size."""

    pixels: np.ndarray  # uint8 (h, w)
    native: tuple[int, int]  # (width, height) of the file
    source: str  # the file, named when its alignment fails


@dataclass(frozen=True)
class Alignment:
    """Where b lies in a (native pixels of a) and how alike the overlap is."""

    score: float  # SSIM of the overlap; -1 where no placement overlaps enough
    scale: tuple[float, float]  # (x, y) native pixels of a per native pixel of b
    shift: tuple[float, float]  # (x, y) of b's origin in a
    overlap: float  # overlap area / area of the smaller image


def prepare(gray: Image.Image, size: int, source: str) -> Prepared:
    """`gray` (read from `source`) resized bilinearly to longest side `size` (aspect kept)."""
    return Prepared(np.asarray(gray.resize(fitted(gray.size, size))), gray.size, source)


def fitted(native: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) of an image of `native` size resized to longest side `size`."""
    factor = size / max(native)
    return max(WIN, round(native[0] * factor)), max(WIN, round(native[1] * factor))


def align(a: Prepared, b: Prepared, zoom: bool) -> Alignment:
    """The best of the crop, rescale and (with `zoom`) zoom hypotheses for b inside a (see the
    module)."""
    height, width = a.pixels.shape
    pitch = width / a.native[0]  # rendered pixels per native pixel of a
    sizes = [_size(b, pitch, 1.0), (width, height)]
    if zoom:
        sizes.append(_size(b, pitch, _zoom(a, b, pitch)))
    best = Alignment(-1.0, (1.0, 1.0), (0.0, 0.0), 0.0)
    for size in dict.fromkeys(sizes):
        moved = b.pixels if b.pixels.shape == size[::-1] else _render(b.pixels, size)
        score, (dy, dx), overlap = _place(a.pixels.astype(np.float64), moved.astype(np.float64))
        if score > best.score:
            scale = (size[0] / pitch / b.native[0], size[1] / pitch / b.native[1])
            best = Alignment(score, scale, (dx / pitch, dy / pitch), overlap)
    return best


def _size(b: Prepared, pitch: float, zoom: float) -> tuple[int, int]:
    """b's (width, height) rendered at `zoom` times a's pitch."""
    return max(WIN, round(b.native[0] * pitch * zoom)), max(WIN, round(b.native[1] * pitch * zoom))


def _zoom(a: Prepared, b: Prepared, pitch: float) -> float:
    """The zoom factor of b (on a's pitch) whose placement scores best at half size."""
    half = _render(a.pixels, (a.pixels.shape[1] // 2, a.pixels.shape[0] // 2)).astype(np.float64)

    def score(zoom: float) -> float:
        moved = _render(b.pixels, _size(b, pitch / 2, zoom)).astype(np.float64)
        return _place(half, moved)[0]

    best = max(SCAN, key=score)
    for step in REFINE:
        near = [z for z in (best / step, best * step) if SEARCH[0] <= max(z, 1 / z) <= SEARCH[1]]
        best = max([best, *near], key=score)
    return float(best)


def overlap_slices(
    a_shape: tuple[int, int], b_shape: tuple[int, int], offset: tuple[int, int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of a and of b covering their overlap when b's origin lies at `offset` (dy, dx).

    Both are empty when b lies entirely outside a (no negative stop for Python to wrap).
    """
    start = [max(0, o) for o in offset]
    ends = [min(sa, o + sb) for sa, sb, o in zip(a_shape, b_shape, offset, strict=True)]
    stop = [max(lo, hi) for lo, hi in zip(start, ends, strict=True)]
    in_a = tuple(slice(lo, hi) for lo, hi in zip(start, stop, strict=True))
    in_b = tuple(slice(lo - o, hi - o) for lo, hi, o in zip(start, stop, offset, strict=True))
    return in_a, in_b  # type: ignore[return-value]


def _render(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def _place(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int], float]:
    """SSIM, offset (dy, dx) of b in a and overlap of the phase-correlation placement.

    Both images are padded with their mean to a common shape; where that placement overlaps
    too little, b is centred on a instead; -1 where even that overlaps too little.
    """
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape, strict=True))
    half = [downscale_local_mean(_pad(x, shape), 2) for x in (a, b)]
    shift = 2 * phase_cross_correlation(*half, upsample_factor=SUBPIXEL, normalization="phase")[0]
    whole = np.round(shift).astype(int)
    moved = (
        ndimage.shift(b, shift - whole, order=1, mode="nearest") if (shift != whole).any() else b
    )
    centred = tuple((p - q) // 2 for p, q in zip(a.shape, b.shape, strict=True))
    for offset, placed in ((tuple(whole), moved), (centred, b)):
        in_a, in_b = overlap_slices(a.shape, b.shape, offset)
        part_a, part_b = a[in_a], placed[in_b]
        overlap = part_a.size / min(a.size, b.size)
        if overlap >= MIN_OVERLAP and min(part_a.shape) >= WIN:
            score = structural_similarity(part_a, part_b, data_range=255.0)
            return float(score), offset, overlap
    return -1.0, (0, 0), 0.0


def _pad(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full(shape, x.mean())
    out[: x.shape[0], : x.shape[1]] = x
    return out
