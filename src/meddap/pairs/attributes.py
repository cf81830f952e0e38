"""Prompt attributes of a lesion (ClinicalPrior), derived from an image and its mask by rule.

BUSI carries no echogenicity or boundary labels, so both come from grey-level statistics:

- echogenicity: the spread, the std of the grey levels inside the mask over the std of the whole
  image; `homogeneous` when spread < thresholds["spread"], else `heterogeneous` (not std / mean:
  an anechoic cyst's mean is near 0, which would call the most uniform lesions heterogeneous);
- boundary: the contrast |mean_ring - mean_in| / pooled std, the ring being the `ring` px just
  outside the mask (its dilation minus itself), the pooled std sqrt((var_in + var_ring) / 2);
  `clear` when contrast > thresholds["contrast"], else `unclear`.

Both statistics are unitless (any grey-level scale). `median_thresholds` sets the thresholds
to a training fold's medians, so each word describes about half of its lesions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from meddap.common.errors import MeddapError
from meddap.common.labels import LESION_CLASSES

RING = 5  # px of the ring outside the mask that the boundary contrast compares with the inside
DEFAULT_THRESHOLDS = {"spread": 0.6, "contrast": 1.4}  # the busi sample's medians: 0.59, 1.37
PROMPT = "breast ultrasound image of {} tumor with {} echogenicity and {} boundary"
ECHOGENICITY = ("homogeneous", "heterogeneous")
BOUNDARY = ("clear", "unclear")


def lesion_statistics(image: np.ndarray, mask: np.ndarray, ring: int = RING) -> dict[str, float]:
    """The raw spread inside the mask and the contrast between the mask and the ring around it."""
    image, mask = np.asarray(image, dtype=float), np.asarray(mask) > 0
    if image.ndim != 2 or image.shape != mask.shape:
        raise MeddapError(f"image {image.shape} and mask {mask.shape} must be one 2-D shape")
    if not mask.any():
        raise MeddapError("the mask is empty: a lesion's attributes need lesion pixels")
    around = ndimage.binary_dilation(mask, iterations=ring) & ~mask
    if not around.any():
        raise MeddapError("the mask covers the whole image: no ring outside it to compare")
    inside, outside = image[mask], image[around]
    pooled = np.sqrt((inside.var() + outside.var()) / 2)
    return {
        "spread": float(inside.std() / max(image.std(), 1e-6)),
        "contrast": float(abs(outside.mean() - inside.mean()) / max(pooled, 1e-6)),
    }


def lesion_attributes(
    image: np.ndarray,
    mask: np.ndarray,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    *,
    ring: int = RING,
) -> dict[str, str | float]:
    """Echogenicity and boundary words of a lesion, with the spread and contrast they come from."""
    stats = lesion_statistics(image, mask, ring)
    return {
        "echogenicity": ECHOGENICITY[stats["spread"] >= thresholds["spread"]],
        "boundary": BOUNDARY[stats["contrast"] <= thresholds["contrast"]],
        **stats,
    }


def median_thresholds(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], *, ring: int = RING
) -> dict[str, float]:
    """Thresholds {"spread", "contrast"} at the medians over a fold's lesion images and masks."""
    if not images or len(images) != len(masks):
        raise MeddapError(
            f"need one mask per image, at least one, got {len(images)} images, {len(masks)} masks"
        )
    stats = [lesion_statistics(im, m, ring) for im, m in zip(images, masks, strict=True)]
    return {key: float(np.median([s[key] for s in stats])) for key in ("spread", "contrast")}


def attribute_prompt(label: str, echogenicity: str, boundary: str) -> str:
    """The seed's text prompt of a benign or malignant lesion with these attributes."""
    for name, value, allowed in (
        ("label", label, LESION_CLASSES),
        ("echogenicity", echogenicity, ECHOGENICITY),
        ("boundary", boundary, BOUNDARY),
    ):
        if value not in allowed:
            raise MeddapError(f"{name} {value!r} has no prompt: use one of {allowed}")
    return PROMPT.format(label, echogenicity, boundary)
