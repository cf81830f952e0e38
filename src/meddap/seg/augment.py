"""Training sets of the segmenters and the conventional augmentations of DiffBoost (nnU-Net's).

A training set is `real` (the fold's real train split) or `aug-<name>`: the same images with one
augmentation (or `deepstack`, all of them in nnU-Net's order) drawn afresh for every image of
every batch, each step applied with probability `segmentation.augment_probability`. Spatial
steps move image and mask together (bilinear image, nearest mask), intensity steps change the
image only. Draws come from one seed per batch, taken from the training loop's generator, so a
run is deterministic per seed and resumes with the same draws.

Patch mixing (DiffBoost, DiffBoost-style; trainsets `{condition}-real-{r}to{s}-mix{λ}p{p}`,
`meddap.trainsets.pairs`): `RandPatchMixd` splits each image into a p x p grid of cells (edges at
round(k S / p)) and shows, in each cell independently with probability λ, the pixels of the
image's real parent instead, drawn afresh every time the pair is in a batch. A `real`-mask
synthetic image is pixel-aligned with its parent's centre crop and shares its mask, so the mask
is unchanged and the loss is the usual segmentation loss of the mixed image against the shared
mask ("applied in the loss on pixel-aligned pairs" read as: the mixed image is the input). A
mixed set's training images carry the parent's pixels as a second channel (`with_parents`;
a real train row's parent is itself, so mixing leaves it unchanged) that `augment` hands to
the transform under `PARENT` and drops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandomizableTransform,
    RandRotated,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandSimulateLowResolutiond,
    RandZoomd,
)
from monai.utils import convert_to_tensor

from meddap.common.errors import MeddapError
from meddap.seg.data import Pairs
from meddap.trainsets import TrainingSet

KEYS = ("image", "mask")
MODES = ("bilinear", "nearest")
PARENT = "parent"  # the key of the real parent's pixels that patch mixing takes cells from

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


def cell_edges(size: int, patches: int) -> np.ndarray:
    """The p + 1 cell boundaries along a side of `size` pixels: round(k size / p), k = 0..p."""
    return np.rint(np.arange(patches + 1) * size / patches).astype(int)


def cell_map(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (p, p) boolean grid of cells spread over `shape` (H, W): each pixel takes its cell's."""
    rows = np.repeat(np.arange(len(cells)), np.diff(cell_edges(shape[0], len(cells))))
    cols = np.repeat(np.arange(cells.shape[1]), np.diff(cell_edges(shape[1], cells.shape[1])))
    return cells[np.ix_(rows, cols)]


class RandPatchMixd(RandomizableTransform, MapTransform):
    """DiffBoost's patch mixing of `keys` (channel-first, 2-D) with the pixels under `source`.

    Each call draws a `patches` x `patches` grid of cells, each True with probability
    `mix_lambda`, and gives the True cells of every key the pixels of `source` (the image's
    pixel-aligned real parent), which it then drops; the mask and other keys are unchanged.
    """

    def __init__(
        self,
        keys: KeysCollection,
        mix_lambda: float,
        patches: int,
        source: str = PARENT,
        prob: float = 1.0,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        if not 0 <= mix_lambda <= 1 or patches < 1:
            raise MeddapError(f"patch mixing needs lambda in [0, 1] and p >= 1, not {mix_lambda}")
        self.mix_lambda, self.patches, self.source = float(mix_lambda), int(patches), source
        self.cells = np.zeros((self.patches, self.patches), dtype=bool)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandPatchMixd:
        super().set_random_state(seed, state)
        return self

    def randomize(self, data: object = None) -> None:
        """Whether to mix (`prob`) and this call's cells: True shows the real parent."""
        super().randomize(None)
        self.cells = self.R.random_sample((self.patches, self.patches)) < self.mix_lambda

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.source not in d:
            raise MeddapError(f"patch mixing takes the parent's pixels from key {self.source!r}")
        parent = d.pop(self.source)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            real = torch.from_numpy(cell_map(self.cells, tuple(image.shape[-2:])))
            d[key] = torch.where(real.to(image.device), torch.as_tensor(parent), image)
        return d


def with_parents(pairs: Pairs) -> Pairs:
    """`pairs` with each image's parent pixels as a second channel (what `augment` mixes)."""
    if pairs.parents is None:
        raise MeddapError("patch mixing needs the real parents' pixels of the training pairs")
    images = torch.cat([pairs.images, pairs.parents], dim=1)
    return Pairs(pairs.ids, pairs.labels, images, pairs.masks, pairs.parents)


def augmenter(wanted: TrainingSet, probability: float) -> Compose | None:
    """The joint image/mask transform of a training set (None for `real` and unmixed pairs):
    its patch mixing, or its conventional augmentations each applied with `probability`."""
    if wanted.mixing is not None:
        return Compose([RandPatchMixd("image", *wanted.mixing)])
    if not wanted.augmentations:
        return None
    return Compose([STEPS[n](probability) for n in wanted.augmentations])


def augment(
    transform: Compose, images: torch.Tensor, masks: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks (N, 1, S, S) transformed pair by pair with draws seeded by `seed`.

    Images (N, 2, S, S) of a mixed set (`with_parents`) give the transform channel 1 as `PARENT`.
    """
    transform.set_random_state(seed=seed)
    tracked = get_track_meta()
    set_track_meta(False)  # plain tensors: MONAI's metadata would only slow this down
    try:
        pairs = [transform(_sample(i, m)) for i, m in zip(images, masks, strict=True)]
    finally:
        set_track_meta(tracked)
    return (
        torch.stack([convert_to_tensor(p["image"], track_meta=False) for p in pairs]).float(),
        torch.stack([convert_to_tensor(p["mask"], track_meta=False) for p in pairs]).float(),
    )


def _sample(image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """One pair as the transforms' dictionary; a second image channel is the parent's pixels."""
    if image.shape[0] == 2:
        return {"image": image[:1], PARENT: image[1:], "mask": mask}
    return {"image": image, "mask": mask}
