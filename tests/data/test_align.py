"""Alignment holds for any pair of shapes: a seeded grid of sizes, aspect ratios (portrait and
landscape), offsets and scales; a failure on a pair names both images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from meddap.common.errors import MeddapError
from meddap.data import curation
from meddap.data.align import overlap_slices, prepare
from meddap.data.curation import align_pair, find_duplicates
from tests.data.test_curation import SIMILARITY

CASES = 48  # seeded random pairs per property


def _texture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth noise of the given size (blobs about 1/60 of the longest side), as a grey image."""
    noise = gaussian_filter(rng.standard_normal((height, width)), max(width, height) / 60)
    scaled = 128 + 60 * noise / max(noise.std(), 1e-9)
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def _shape(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): longest side 120-640 (real ultrasound images: 200-1000), aspect 0.4-2.5
    (portrait or landscape)."""
    longest, aspect = int(rng.integers(120, 640)), float(np.exp(rng.uniform(-0.92, 0.92)))
    width = longest if aspect >= 1 else max(8, round(longest * aspect))
    height = longest if aspect < 1 else max(8, round(longest / aspect))
    return width, height


def test_overlap_slices_agree_for_any_offset() -> None:
    """Both slices have one shape, the true overlap's, however far b lies outside a."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        a_shape, b_shape = (tuple(int(v) for v in rng.integers(1, 300, 2)) for _ in range(2))
        offset = tuple(int(v) for v in rng.integers(-400, 400, 2))
        in_a, in_b = overlap_slices(a_shape, b_shape, offset)  # type: ignore[arg-type]
        part_a, part_b = np.zeros(a_shape)[in_a], np.zeros(b_shape)[in_b]
        sides = [
            max(0, min(sa, o + sb) - max(0, o))
            for sa, sb, o in zip(a_shape, b_shape, offset, strict=True)
        ]
        assert part_a.shape == part_b.shape == tuple(sides), (a_shape, b_shape, offset)


@pytest.mark.parametrize("seed", range(CASES))
def test_any_two_images_align_without_error(seed: int) -> None:
    """Unrelated images of any two shapes: a score in [-1, 1], an overlap in [0, 1]."""
    rng = np.random.default_rng(seed)
    a, b = (_texture(rng, *_shape(rng)) for _ in range(2))
    prepared = [prepare(a, 128, "a"), prepare(b, 128, "b")]
    for i, j in ((0, 1), (1, 0)):
        found = align_pair(prepared, i, j, True)
        assert -1.0 <= found.score <= 1.0 and 0.0 <= found.overlap <= 1.0
        assert all(np.isfinite(found.scale)) and min(found.scale) > 0
        assert all(np.isfinite(found.shift))


@pytest.mark.parametrize("seed", range(CASES))
def test_crops_and_rescaled_copies_are_found_at_their_place(seed: int) -> None:
    """A crop (70-100 % of each side, anywhere) or a 0.6-1.6x rescale of the whole image scores
    high, at its offset and scale."""
    rng = np.random.default_rng(1000 + seed)
    width, height = _shape(rng)
    image = _texture(rng, width, height)
    if seed % 2:  # a crop at a random offset
        size = [round(side * rng.uniform(0.7, 1.0)) for side in (width, height)]
        origin = [
            int(rng.integers(0, width - size[0] + 1)),
            int(rng.integers(0, height - size[1] + 1)),
        ]
        copy = image.crop((*origin, origin[0] + size[0], origin[1] + size[1]))
        scale, shift = (1.0, 1.0), tuple(origin)
    else:  # the whole field of view at another pixel pitch
        factor = float(rng.uniform(0.6, 1.6))
        copy = image.resize((round(width * factor), round(height * factor)))
        scale, shift = (width / copy.width, height / copy.height), (0, 0)
    found = align_pair([prepare(image, 128, "image"), prepare(copy, 128, "copy")], 0, 1, True)
    assert found.score > 0.8, (width, height, copy.size)
    assert found.scale == pytest.approx(scale, rel=0.03)
    pitch = max(width, height) / 128  # native pixels per aligned pixel
    assert found.shift == pytest.approx(shift, abs=1.5 * pitch)


def test_portrait_and_landscape_images_curate_together(tmp_path: Path) -> None:
    """A set mixing portrait and landscape images of many sizes runs through find_duplicates."""
    rng = np.random.default_rng(7)
    rows = []
    for k in range(24):
        path = tmp_path / f"i{k:02d}.png"
        _texture(rng, *_shape(rng)).save(path)
        rows.append({"id": f"i{k:02d}", "label": "benign", "image_path": str(path)})
    manifest = pd.DataFrame(rows).assign(mask_path=None)
    found = find_duplicates(manifest, SIMILARITY)
    assert len(found) > 24 and found["score"].between(-1, 1).all()


def test_a_failure_on_a_pair_names_both_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [tmp_path / f"{name}.png" for name in ("left", "right")]
    rng = np.random.default_rng(3)
    for path in paths:
        _texture(rng, 60, 40).save(path)
    manifest = pd.DataFrame(
        {"id": ["l", "r"], "label": ["benign"] * 2, "image_path": list(map(str, paths))}
    ).assign(mask_path=None)

    def broken(*_: object) -> None:
        raise ValueError("Input images must have the same dimensions.")

    monkeypatch.setattr(curation, "_align", broken)
    with pytest.raises(MeddapError, match=r"aligning images .*left\.png and .*right\.png failed"):
        find_duplicates(manifest, SIMILARITY)
