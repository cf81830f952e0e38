"""pairwise_ssim equals scikit-image's structural_similarity; load_gray reads any image mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from meddap.common.errors import MeddapError
from meddap.common.images import load_gray
from meddap.data.ssim import pairwise_ssim


def skimage_matrix(images: np.ndarray) -> np.ndarray:
    n = len(images)
    return np.array(
        [
            [structural_similarity(images[i], images[j], data_range=255) for j in range(n)]
            for i in range(n)
        ]
    )


def smooth_images(n: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Blurred noise with near-duplicates, a constant image and saturated pixels."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(size=(n, *shape)), sigma=(0, 2, 2))
    images = 128 + 400 * base
    images[1] = images[0] + rng.normal(0, 3, shape)  # near-duplicate of image 0
    images[2] = 0.6 * images[0] + 40  # same structure, other brightness and contrast
    images[3] = 77.0  # constant
    return np.clip(images, 0, 255)


@pytest.fixture(scope="module")
def busi_images(busi_sample: Path) -> np.ndarray:
    paths = sorted(p for p in busi_sample.glob("*/*.png") if "_mask" not in p.name)
    assert len(paths) == 23
    return load_gray(paths, 128)


def test_equals_skimage_on_all_pairs_of_the_real_busi_images(busi_images: np.ndarray) -> None:
    got = pairwise_ssim(busi_images)
    assert np.abs(got - skimage_matrix(busi_images)).max() < 1e-5


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_equals_skimage_on_random_images(dtype: type) -> None:
    images = smooth_images(37, (29, 45), seed=1).astype(dtype)
    want = skimage_matrix(images)
    assert want[0, 1] > 0.9 and want[0, 2] > 0.5  # the planted similar pairs are covered
    assert np.abs(pairwise_ssim(images) - want).max() < 1e-5


def test_matrix_is_symmetric_with_unit_diagonal() -> None:
    got = pairwise_ssim(smooth_images(19, (16, 16), seed=2).astype(np.uint8))
    assert got.shape == (19, 19)
    assert np.array_equal(got, got.T)
    assert np.array_equal(np.diag(got), np.ones(19))


def test_result_does_not_depend_on_thread_count() -> None:
    images = smooth_images(21, (20, 24), seed=3).astype(np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pairwise_ssim(images)
        torch.set_num_threads(2)
        two = pairwise_ssim(images)
        assert torch.get_num_threads() == 2  # restored after the call
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, two)


def test_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="H, W >= 7"):
        pairwise_ssim(np.zeros((3, 6, 20), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1", "P"])
def test_load_gray_converts_any_mode_and_resizes_bilinearly(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(4)
    rgb = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    original = rgb.convert(mode)
    original.save(tmp_path / "x.png")
    want = np.asarray(original.convert("L").resize((16, 16), Image.Resampling.BILINEAR))
    got = load_gray([tmp_path / "x.png"], 16)
    assert got.shape == (1, 16, 16) and got.dtype == np.uint8
    assert np.array_equal(got[0], want)


def test_load_gray_names_an_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "benign (3).png"
    bad.write_bytes(b"not a png")
    with pytest.raises(MeddapError, match=r"benign \(3\)\.png"):
        load_gray([bad], 16)
    with pytest.raises(MeddapError, match="missing.png"):
        load_gray([tmp_path / "missing.png"], 16)
