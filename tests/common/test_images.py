"""Image reading: any mode to 8-bit grayscale, high-bit data scaled to 8 bits, never clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meddap.common.errors import MeddapError
from meddap.common.images import load_gray, open_gray
from meddap.data.ingest import build_manifest
from meddap.diffusion.latents import load_image

NAME = "benign (195).png"


@pytest.fixture(scope="module")
def original(busi_sample: Path) -> np.ndarray:
    """A real BUSI image as 8-bit grayscale."""
    with Image.open(busi_sample / "benign" / NAME) as image:
        return np.asarray(image.convert("L"))


def _save16(pixels: np.ndarray, path: Path) -> Path:
    """Write uint16 pixels as a 16-bit grayscale PNG (Pillow reads it back as mode I;16)."""
    Image.fromarray(pixels.astype(np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    return path


@pytest.mark.parametrize("widen", [lambda v: v * 257, lambda v: v << 8], ids=["x257", "shift8"])
def test_16_bit_png_reads_as_the_8_bit_original(
    original: np.ndarray, tmp_path: Path, widen
) -> None:
    path = _save16(widen(original.astype(np.uint16)), tmp_path / "wide.png")
    with open_gray(path) as gray:
        got = np.asarray(gray)
    assert got.dtype == np.uint8 and got.shape == original.shape
    assert np.abs(got.astype(int) - original).max() <= 1
    with Image.open(path) as image:  # what convert("L") did: nearly all white
        assert (np.asarray(image.convert("L")) == 255).mean() > 0.99


def test_every_reader_scales_16_bit_alike(original: np.ndarray, tmp_path: Path) -> None:
    eight = tmp_path / "eight.png"
    Image.fromarray(original).save(eight)
    wide = _save16(original.astype(np.uint16) * 257, tmp_path / "wide.png")
    a, b = load_gray([eight, wide], 64)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert torch_close(load_image(str(eight), 32), load_image(str(wide), 32))


def torch_close(a, b) -> bool:
    """Two LoRA-cache tensors in [-1, 1] within one grey level (2/255)."""
    return bool((a - b).abs().max() <= 2 / 255 + 1e-6)


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        (np.array([[0, 257, 65535]], dtype=np.int32), [0, 1, 255]),
        (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), [0, 128, 255]),
    ],
    ids=["int32", "float"],
)
def test_int32_and_float_images_use_their_data_range(
    tmp_path: Path, pixels: np.ndarray, expected: list[int]
) -> None:
    path = tmp_path / "image.tif"
    Image.fromarray(pixels).save(path)
    with open_gray(path) as gray:
        assert np.asarray(gray).tolist() == [expected]


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.array([[0, 70000]], dtype=np.int32), r"'I' pixel values 0\.\.70000 outside 0\.\.65535"),
        (np.array([[-1, 5]], dtype=np.int32), r"'I' pixel values -1\.\.5 outside"),
        (np.array([[0.0, 2.5]], dtype=np.float32), r"'F' pixel values 0\.0\.\.2\.5 outside 0\.0"),
    ],
    ids=["above-16-bit", "negative", "float-above-1"],
)
def test_out_of_range_values_stop_naming_the_file(
    tmp_path: Path, pixels: np.ndarray, message: str
) -> None:
    path = tmp_path / "odd.tif"
    Image.fromarray(pixels).save(path)
    with pytest.raises(MeddapError, match=rf"image .*odd\.tif has {message}"), open_gray(path):
        pass


def test_ingest_reads_16_bit_images_and_masks(original: np.ndarray, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    mask = np.zeros(original.shape, dtype=np.uint16)
    mask[100:200, 150:300] = 65535
    for label in ("benign", "malignant"):
        (raw / label).mkdir(parents=True)
        _save16(original.astype(np.uint16) * 257, raw / label / f"{label} (1).png")
        _save16(mask, raw / label / f"{label} (1)_mask.png")
    table = build_manifest(raw, "wide", "busi", tmp_path / "masks")
    merged = np.asarray(Image.open(table.mask_path[0]))
    assert (merged == (mask >> 8)).all() and merged.max() == 255
    Image.fromarray(np.array([[0.0, 3.0]], dtype=np.float32)).save(
        raw / "benign" / "benign (2).tif"
    )
    _save16(mask, raw / "benign" / "benign (2)_mask.png")
    with pytest.raises(MeddapError, match=r"image .*benign \(2\)\.tif has 'F' pixel values"):
        build_manifest(raw, "wide", "busi", tmp_path / "masks2")


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
