"""Reading images the way every stage does: 8-bit grayscale, resized, one error sentence."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from meddap.common.errors import MeddapError


@contextmanager
def open_gray(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """The image at `path` as 8-bit grayscale ("L"); an unreadable file stops naming it."""
    try:
        with Image.open(path) as img:
            gray = img.convert("L")
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
    return torch.from_numpy(load_gray(paths, size))[:, None]
