"""Reading images the way every stage does: 8-bit grayscale, resized, one error sentence.

Every reader (ingest, SSIM curation, quality, classifiers, the LoRA cache, figures) goes through
`to_gray8` / `open_gray`, so a 16-bit scan looks the same to every stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from meddap.common.errors import MeddapError

if TYPE_CHECKING:
    import torch

HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _scaled(pixels: np.ndarray, mode: str, path: str | os.PathLike[str]) -> np.ndarray:
    """uint8 pixels of a 16-bit, 32-bit integer or float grayscale array (see `to_gray8`)."""
    lo, hi = (0.0, 1.0) if mode == "F" else (0, 65535)
    if pixels.size and (pixels.min() < lo or pixels.max() > hi):
        raise MeddapError(
            f"image {path} has {mode!r} pixel values {pixels.min()}..{pixels.max()} outside "
            f"{lo}..{hi} (expected 8-bit, 16-bit or 0-1 float grayscale)"
        )
    if mode == "F":
        return np.rint(pixels * 255.0).astype(np.uint8)
    return (pixels.astype(np.uint32) >> 8).astype(np.uint8)


def to_gray8(image: Image.Image, path: str | os.PathLike[str]) -> Image.Image:
    """`image` as 8-bit grayscale ("L"), scaled by the range of its data type, never clipped.

    8-bit, palette, RGB(A) and 1-bit images are converted by Pillow (ITU-R 601 luma). 16-bit
    grayscale ("I;16*", and "I", how Pillow holds 16-bit and 32-bit integer data) keeps its
    top 8 bits (value >> 8, so 0..65535 maps to 0..255 and v * 257 or v << 8 maps back to v);
    float ("F") data is taken as 0..1 and rounded to 0..255. This fixed, dtype-range scaling
    (not per-image min-max stretching) keeps brightness comparable between images. Values
    outside those ranges (negative or above 65535 in "I", outside 0..1 in "F") stop naming
    `path` rather than being clipped.
    """
    if image.mode not in HIGH_BIT_MODES:
        return image.convert("L")
    return Image.fromarray(_scaled(np.asarray(image), image.mode, path))


@contextmanager
def open_gray(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """The image at `path` as 8-bit grayscale ("L", see `to_gray8`); a bad file stops naming it."""
    try:
        with Image.open(path) as img:
            gray = to_gray8(img, path)
    except (OSError, ValueError) as err:
        raise MeddapError(f"image {path} could not be read as an image file: {err}") from err
    yield gray


def load_gray(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> np.ndarray:
    """Grayscale images resized to (size, size), bilinear by default: uint8 (N, size, size)."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for k, path in enumerate(paths):
        with open_gray(path) as gray:
            out[k] = np.asarray(gray.resize((size, size), resample))
    return out


def load_images(paths: Sequence[str | os.PathLike[str]], size: int) -> torch.Tensor:
    """Grayscale images resized to `size` x `size`, as one uint8 tensor (N, 1, size, size)."""
    import torch  # here, so that jobs reading images without torch (ingest) start fast

    return torch.from_numpy(load_gray(paths, size))[:, None]
