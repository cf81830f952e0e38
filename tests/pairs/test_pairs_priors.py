"""Clinical-prior masks and prompt attributes of the mask-conditioned stage (ClinicalPrior)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import draw, measure

from meddap.common.errors import MeddapError
from meddap.data.ingest import foreground
from meddap.pairs.attributes import (
    DEFAULT_THRESHOLDS,
    attribute_prompt,
    lesion_attributes,
    median_thresholds,
)
from meddap.pairs.clinical import clinical_mask, lesion_sizes, size_bins

BUSI = Path(__file__).resolve().parents[2].parent / "shared/data/busi-sample/Dataset_BUSI_with_GT"
PROMPTS = {
    f"breast ultrasound image of {label} tumor with {echo} echogenicity and {edge} boundary"
    for label, echo, edge in itertools.product(
        ("benign", "malignant"), ("homogeneous", "heterogeneous"), ("clear", "unclear")
    )
}
# Lesions of both orientations and a 2:1 aspect, so only the class decides the drawn orientation.
SIZES = np.array([[30, 15], [12, 24], [40, 20], [25, 50], [50, 25], [18, 36]], dtype=float)


def _bbox_hw(mask: np.ndarray) -> tuple[int, int]:
    top, left, bottom, right = measure.regionprops(mask.astype(int))[0].bbox
    return bottom - top, right - left


def _disk(
    value: np.ndarray, background: np.ndarray, radius: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(background.shape, dtype=bool)
    mask[draw.disk((64, 64), radius, shape=mask.shape)] = True
    return np.where(mask, value, background), mask


@pytest.mark.parametrize("alpha", [0.0, 100.0])
def test_benign_is_wider_than_tall_and_malignant_taller(alpha: float) -> None:
    for seed, size in itertools.product(range(8), ("small", "medium", "large")):
        height, width = _bbox_hw(clinical_mask("benign", size, (256, 256), SIZES, 8, alpha, seed))
        assert width > height, (seed, size)
        height, width = _bbox_hw(
            clinical_mask("malignant", size, (256, 256), SIZES, 8, alpha, seed)
        )
        assert height > width, (seed, size)


def test_centre_keeps_the_ellipse_inside_the_image() -> None:
    sizes = np.array([[20, 10]] * 3, dtype=float)
    for seed in range(5):  # a shape exactly 2a x 2b leaves one centre: the ellipse fills it
        mask = clinical_mask("benign", "small", (20, 40), sizes, 4, 0.0, seed)
        assert measure.regionprops(mask.astype(int))[0].bbox == (0, 0, 20, 40)
        mask = clinical_mask("malignant", "large", (40, 20), sizes, 4, 0.0, seed)
        assert measure.regionprops(mask.astype(int))[0].bbox == (0, 0, 40, 20)
    for seed in range(20):  # a little room: never clipped by an edge
        mask = clinical_mask("benign", "medium", (26, 48), sizes, 4, 0.0, seed)
        assert _bbox_hw(mask) >= (19, 39) and mask.sum() > 0.97 * np.pi * 20 * 10
    with pytest.raises(MeddapError, match="fits shape"):
        clinical_mask("benign", "small", (20, 39), sizes, 4, 0.0, 0)


def test_masks_are_deterministic_per_seed() -> None:
    first = clinical_mask("malignant", "medium", (128, 128), SIZES, 6, 60, 3)
    assert first.dtype == bool and first.shape == (128, 128)
    assert np.array_equal(first, clinical_mask("malignant", "medium", (128, 128), SIZES, 6, 60, 3))
    assert not np.array_equal(
        first, clinical_mask("malignant", "medium", (128, 128), SIZES, 6, 60, 4)
    )


def test_deformation_changes_the_ellipse() -> None:
    plain = clinical_mask("benign", "large", (128, 128), SIZES, 4, 0.0, 1)
    deformed = clinical_mask("benign", "large", (128, 128), SIZES, 4, 80, 1)
    assert (plain != deformed).sum() > 20


def test_size_bins_are_terciles_of_the_measured_areas() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.uniform(4, 30, size=(30, 2))
    bins = size_bins(sizes)
    assert list(bins) == ["small", "medium", "large"]
    assert bins["small"][1] <= bins["medium"][0] <= bins["medium"][1] <= bins["large"][0]
    radius = np.sqrt(sizes.prod(axis=1))
    assert bins["small"][0] == radius.min() and bins["large"][1] == radius.max()
    areas = {}
    for size, (low, high) in bins.items():
        drawn = [clinical_mask("benign", size, (64, 64), sizes, 4, 0.0, s).sum() for s in range(15)]
        assert all(low - 1 <= np.sqrt(n / np.pi) <= high + 1 for n in drawn), size
        areas[size] = np.mean(drawn)
    assert areas["small"] < areas["medium"] < areas["large"]


def test_bad_labels_sizes_and_measurements_raise() -> None:
    with pytest.raises(MeddapError, match="'normal'"):
        clinical_mask("normal", "small", (64, 64), SIZES, 4, 10, 0)
    with pytest.raises(MeddapError, match="'huge'"):
        clinical_mask("benign", "huge", (64, 64), SIZES, 4, 10, 0)
    with pytest.raises(MeddapError, match="none of the 2 masks"):
        lesion_sizes([np.zeros((8, 8)), np.zeros((8, 8), dtype=bool)])
    with pytest.raises(MeddapError, match="at least 3"):
        size_bins(SIZES[:2])


def test_lesion_sizes_measure_the_largest_component() -> None:
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[5:9, 10:20] = 255  # 10 wide, 4 tall
    mask[30:32, 30:32] = 255  # a smaller speck
    sizes = lesion_sizes([mask, np.zeros((40, 40)), mask.T > 0])
    assert sizes.tolist() == [[5.0, 2.0], [2.0, 5.0]]


def test_uniform_disk_with_a_strong_edge_is_homogeneous_and_clear() -> None:
    rng = np.random.default_rng(0)
    image, mask = _disk(180 + rng.normal(0, 2, (128, 128)), 40 + rng.normal(0, 2, (128, 128)))
    found = lesion_attributes(image, mask)
    assert (found["echogenicity"], found["boundary"]) == ("homogeneous", "clear")
    assert found["spread"] < 0.05 and found["contrast"] > 10


def test_noisy_disk_blending_into_background_is_heterogeneous_and_unclear() -> None:
    rng = np.random.default_rng(0)
    inside = np.clip(100 + rng.normal(0, 70, (128, 128)), 0, 255)
    image, mask = _disk(inside, 100 + rng.normal(0, 10, (128, 128)))
    found = lesion_attributes(image, mask)
    assert (found["echogenicity"], found["boundary"]) == ("heterogeneous", "unclear")


def test_median_thresholds_split_a_fold_in_half() -> None:
    rng = np.random.default_rng(1)
    images, masks = [], []
    for noise, step in zip(rng.permutation(10), rng.permutation(10), strict=True):
        background = 60 + rng.normal(0, 5, (128, 128))
        image, mask = _disk(60 + 8 * step + rng.normal(0, 3 + 4 * noise, (128, 128)), background)
        images.append(image)
        masks.append(mask)
    thresholds = median_thresholds(images, masks)
    found = [lesion_attributes(i, m, thresholds) for i, m in zip(images, masks, strict=True)]
    assert sum(f["echogenicity"] == "homogeneous" for f in found) == 5
    assert sum(f["boundary"] == "clear" for f in found) == 5
    with pytest.raises(MeddapError, match="one mask per image"):
        median_thresholds(images, masks[:-1])


def test_empty_mask_raises() -> None:
    with pytest.raises(MeddapError, match="mask is empty"):
        lesion_attributes(np.ones((16, 16)), np.zeros((16, 16), dtype=bool))


def test_prompt_is_the_seed_template() -> None:
    assert attribute_prompt("malignant", "heterogeneous", "unclear") == (
        "breast ultrasound image of malignant tumor with heterogeneous echogenicity "
        "and unclear boundary"
    )
    assert attribute_prompt("benign", "homogeneous", "clear") in PROMPTS
    with pytest.raises(MeddapError, match="'normal'"):
        attribute_prompt("normal", "homogeneous", "clear")
    with pytest.raises(MeddapError, match="'smooth'"):
        attribute_prompt("benign", "homogeneous", "smooth")


def test_real_busi_lesions_give_allowed_prompts_and_sizes() -> None:
    if not BUSI.is_dir():
        pytest.skip(f"the real BUSI sample is missing: {BUSI}")
    images, masks, labels = [], [], []
    for label in ("benign", "malignant"):
        for path in sorted((BUSI / label).glob("* (*).png")):
            images.append(np.asarray(Image.open(path).convert("L")))
            mask = np.zeros(images[-1].shape, dtype=bool)
            for part in path.parent.glob(f"{path.stem}_mask*.png"):
                mask |= foreground(Image.open(part), part)
            masks.append(mask)
            labels.append(label)
    assert len(images) == 19
    thresholds = median_thresholds(images, masks)
    found = [lesion_attributes(i, m, thresholds) for i, m in zip(images, masks, strict=True)]
    prompts = [
        attribute_prompt(label, f["echogenicity"], f["boundary"])
        for label, f in zip(labels, found, strict=True)
    ]
    assert set(prompts) <= PROMPTS
    assert sum(f["echogenicity"] == "homogeneous" for f in found) == 9  # below the median
    assert {f["echogenicity"] for f in map(lesion_attributes, images, masks)} == {
        "homogeneous",
        "heterogeneous",
    }
    sizes = lesion_sizes(masks)
    assert sizes.shape == (19, 2) and (sizes > 0).all()
    for size in ("small", "medium", "large"):
        assert clinical_mask("malignant", size, (600, 600), sizes, 10, 200, 0).any()
    assert DEFAULT_THRESHOLDS.keys() == thresholds.keys()
