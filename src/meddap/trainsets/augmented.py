"""`aug-<name>`: the real train split under one conventional augmentation (segmenters).

`aug-deepstack` applies all of them, in nnU-Net's order (`meddap.seg.augment` holds the steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meddap.common.errors import MeddapError
from meddap.trainsets.base import SEGMENTER, TrainingSet

AUGMENTATIONS = (
    "rotate",
    "scale",
    "noise",
    "brightness",
    "contrast",
    "resolution",
    "gamma",
    "mirror",
)  # nnU-Net's order, the order of deepstack
DEEPSTACK = "deepstack"


@dataclass(frozen=True)
class Augmented(TrainingSet):
    """Real, each batch augmented by `augmentation` (or every step, for deepstack)."""

    augmentation: str

    PATTERN = re.compile(r"aug-(?P<augmentation>[a-z]+)")
    GRAMMAR = "aug-{" + ",".join((*AUGMENTATIONS, DEEPSTACK)) + "}"
    TASKS = (SEGMENTER,)
    LISTED = True

    @classmethod
    def from_match(cls, match: re.Match[str]) -> Augmented:
        if match["augmentation"] not in (*AUGMENTATIONS, DEEPSTACK):
            raise MeddapError(
                f"segmentation trainset {match[0]!r} names no augmentation: expected {cls.GRAMMAR}"
            )
        return cls(match["augmentation"])

    @property
    def name(self) -> str:
        return f"aug-{self.augmentation}"

    @property
    def augmentations(self) -> tuple[str, ...]:
        return AUGMENTATIONS if self.augmentation == DEEPSTACK else (self.augmentation,)
