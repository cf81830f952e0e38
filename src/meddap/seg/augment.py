"""Training sets of the segmenters and the conventional augmentations of seed 002 (nnU-Net's).

A training set is `real` (the fold's real train split) or `aug-<name>`: the same images with one
augmentation (or `deepstack`, all of them in nnU-Net's order) drawn afresh for every image of
every batch, each step applied with probability `segmentation.augment_probability`. Spatial
steps move image and mask together (bilinear image, nearest mask), intensity steps change the
image only. Synthetic training sets will be named `{generator}-{ratio}` in the same grammar.
Draws come from one seed per batch, taken from the training loop's generator, so a run is
deterministic per seed and resumes with the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandSimulateLowResolutiond,
    RandZoomd,
)
from monai.utils import convert_to_tensor

from meddap.seg.names import AUGMENTATIONS, DEEPSTACK, augmentation_of

KEYS = ("image", "mask")
MODES = ("bilinear", "nearest")

Step = Callable[[float], MapTransform]
STEPS: dict[str, Step] = {  # nnU-Net's ranges, images in 0..1
    "rotate": lambda p: RandRotated(KEYS, range_x=math.radians(15), prob=p, mode=MODES),
    "scale": lambda p: RandZoomd(  # nearest-exact: pixel centres, as the bilinear image's
        KEYS, prob=p, min_zoom=0.85, max_zoom=1.25, mode=("bilinear", "nearest-exact")
    ),
    "noise": lambda p: RandGaussianNoised("image", prob=p, std=0.05),
    "brightness": lambda p: RandScaleIntensityd("image", factors=0.25, prob=p),
    "contrast": lambda p: RandScaleIntensityFixedMeand("image", factors=0.25, prob=p),
    "resolution": lambda p: RandSimulateLowResolutiond(
        "image", prob=p, upsample_mode="bilinear", zoom_range=(0.5, 1.0)
    ),
    "gamma": lambda p: RandAdjustContrastd("image", prob=p, gamma=(0.7, 1.5)),
    "mirror": lambda p: RandFlipd(KEYS, prob=p, spatial_axis=1),  # left-right only
}


def augmenter(trainset: str, probability: float) -> Compose | None:
    """The joint image/mask transform of `trainset` (None for `real`)."""
    name = augmentation_of(trainset)
    if name is None:
        return None
    names = AUGMENTATIONS if name == DEEPSTACK else (name,)
    return Compose([STEPS[n](probability) for n in names])


def augment(
    transform: Compose, images: torch.Tensor, masks: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks (N, 1, S, S) transformed pair by pair with draws seeded by `seed`."""
    transform.set_random_state(seed=seed)
    tracked = get_track_meta()
    set_track_meta(False)  # plain tensors: MONAI's metadata would only slow this down
    try:
        pairs = [transform({"image": i, "mask": m}) for i, m in zip(images, masks, strict=True)]
    finally:
        set_track_meta(tracked)
    return (
        torch.stack([convert_to_tensor(p["image"], track_meta=False) for p in pairs]).float(),
        torch.stack([convert_to_tensor(p["mask"], track_meta=False) for p in pairs]).float(),
    )
