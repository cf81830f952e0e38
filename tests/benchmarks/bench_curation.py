"""Benchmark: batched all-pairs SSIM vs a scikit-image pairwise loop, 780 images at 128x128.

Run: python tests/benchmarks/bench_curation.py [BUSI_FOLDER]
The images are random crops of the real BUSI sample with noise; the scikit-image loop is timed
on a random subset of pairs and extrapolated to all pairs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from meddap.data.ssim import pairwise_ssim

N_IMAGES, SIZE, N_SUBSET, THREADS = 780, 128, 2000, 2
BUSI = Path(__file__).resolve().parents[3] / "shared/data/busi-sample/Dataset_BUSI_with_GT"


def make_images(folder: Path, rng: np.random.Generator) -> np.ndarray:
    """N_IMAGES grayscale SIZE x SIZE images: random crops of the sample plus Gaussian noise."""
    sources = [
        Image.open(p).convert("L") for p in sorted(folder.glob("*/*.png")) if "_mask" not in p.name
    ]
    out = np.empty((N_IMAGES, SIZE, SIZE), dtype=np.uint8)
    for k in range(N_IMAGES):
        img = sources[rng.integers(len(sources))]
        w, h = (int(s * rng.uniform(0.6, 1.0)) for s in img.size)
        x, y = rng.integers(img.width - w + 1), rng.integers(img.height - h + 1)
        crop = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
        out[k] = np.clip(np.asarray(crop) + rng.normal(0, 4, (SIZE, SIZE)), 0, 255)
    return out


def main() -> None:
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    images = make_images(Path(sys.argv[1]) if len(sys.argv) > 1 else BUSI, rng)
    n_pairs = N_IMAGES * (N_IMAGES - 1) // 2

    start = time.perf_counter()
    batched = pairwise_ssim(images)
    batched_s = time.perf_counter() - start

    subset = rng.choice(N_IMAGES, size=(N_SUBSET, 2))
    subset = subset[subset[:, 0] != subset[:, 1]]
    start = time.perf_counter()
    naive = [structural_similarity(images[i], images[j], data_range=255) for i, j in subset]
    naive_s = (time.perf_counter() - start) * n_pairs / len(subset)

    error = np.abs(batched[subset[:, 0], subset[:, 1]] - naive).max()
    print(f"{N_IMAGES} images {SIZE}x{SIZE}, {n_pairs} pairs, torch threads {THREADS}")
    print(f"batched pairwise_ssim: {batched_s:.1f} s")
    print(f"scikit-image loop:     {naive_s:.1f} s (extrapolated from {len(subset)} pairs)")
    print(f"speed-up: {naive_s / batched_s:.1f}x; max |difference| on the subset: {error:.1e}")


if __name__ == "__main__":
    main()
