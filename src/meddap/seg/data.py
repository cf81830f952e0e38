"""Segmentation data: images and their binary lesion masks, resized jointly.

Images are read as 8-bit grayscale and resized bilinearly, masks (ingest's merged masks,
column `mask_path`) with nearest neighbours; a mask pixel is lesion when its value is above
`MASK_THRESHOLD` (127 of 255), so anti-aliased masks are binarised at half intensity.
`classes`: 'lesions' keeps benign and malignant images (and unlabelled ones, whose datasets
hold lesion images only); 'all' keeps normal images too, with their empty masks.
A patch-mixed training set's synthetic rows also name their real parent's image
(`parent_image_path`), loaded centre-cropped to a square as the pool's masks were made
(`meddap.pairs.controlnet.conditioning_image`), so it is pixel-aligned with the synthetic
image and shares its mask (`Pairs.parents`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

from meddap.common.errors import MeddapError
from meddap.common.images import load_gray, open_gray
from meddap.common.splits import read_table, split_rows
from meddap.trainsets.pairs import COLUMNS

MASK_THRESHOLD = 127
CLASS_CHOICES = ("lesions", "all")
PARENT_COLUMNS = ("parent_id", "parent_image_path")  # the rows of a patch-mixed set add them


@dataclass
class Pairs:
    """Images (N, 1, S, S) float in 0..1 and masks (N, 1, S, S) float 0/1, with ids and labels.

    `parents`: for patch mixing, the (N, 1, S, S) pixels each image mixes with (its real parent's
    centre crop; a real image's own pixels), else None.
    """

    ids: list[str]
    labels: list[str]
    images: torch.Tensor
    masks: torch.Tensor
    parents: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)


def select_classes(table: pd.DataFrame, classes: str, source: str) -> pd.DataFrame:
    """The rows of `table` that `classes` keeps; stops when none is left or a mask is missing."""
    if classes not in CLASS_CHOICES:
        raise MeddapError(f"config key segmentation.classes: {classes!r} is not lesions or all")
    kept = table if classes == "all" else table[table["label"] != "normal"]
    if kept.empty:
        raise MeddapError(f"{source} holds no image of segmentation.classes {classes}")
    missing = kept[kept["mask_path"].isna()]
    if not missing.empty:
        raise MeddapError(f"{source} has no mask_path for image {missing['id'].iloc[0]!r}")
    return kept.reset_index(drop=True)


def load_pairs(table: pd.DataFrame, size: int) -> Pairs:
    """The images and binarised masks of `table` at `size` x `size`.

    With column `parent_image_path` (a patch-mixed set's synthetic rows) also their parents.
    """
    images = load_gray(list(table["image_path"]), size)
    masks = load_gray(list(table["mask_path"]), size, Image.Resampling.NEAREST) > MASK_THRESHOLD
    parents = None
    if "parent_image_path" in table.columns:
        parents = torch.from_numpy(load_fitted(list(table["parent_image_path"]), size))
        parents = parents[:, None].float() / 255
    return Pairs(
        list(table["id"].astype(str)),
        list(table["label"]),
        torch.from_numpy(images)[:, None].float() / 255,
        torch.from_numpy(masks)[:, None].float(),
        parents,
    )


def load_fitted(paths: Sequence[str], size: int) -> np.ndarray:
    """Grayscale images centre-cropped to a square and resized (bilinear): uint8 (N, S, S).

    The crop of `ImageOps.fit`, as the ControlNet's conditioning masks (a `real`-mask
    synthetic image is aligned with its parent's centre crop).
    """
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for k, path in enumerate(paths):
        with open_gray(path) as gray:
            out[k] = np.asarray(ImageOps.fit(gray, (size, size), Image.Resampling.BILINEAR))
    return out


def fold_rows(manifest: str, splits: str, fold: int, split: str, classes: str) -> pd.DataFrame:
    """The rows of split `split` of fold `fold` that `classes` keeps, sorted by id."""
    rows = split_rows(manifest, splits, fold, split, COLUMNS)
    return select_classes(rows, classes, f"{manifest} ({split} split of fold {fold})")


def external_rows(paths: Sequence[str], classes: str) -> dict[str, pd.DataFrame]:
    """Rows (sorted by id) of each external manifest that `classes` keeps, by dataset name."""
    named: dict[str, pd.DataFrame] = {}
    for path in paths:
        table = read_table(path, [*COLUMNS, "dataset"])
        names = set(table["dataset"])
        if len(names) != 1:
            raise MeddapError(f"{path} must name exactly one dataset in column 'dataset'")
        name = names.pop()
        if name in named:
            raise MeddapError(f"the external manifests {list(paths)} name {name} twice")
        ordered = table.assign(id=table["id"].astype(str)).sort_values("id", kind="stable")
        named[name] = select_classes(ordered[list(COLUMNS)], classes, path)
    return named


def concat_pairs(parts: Sequence[Pairs]) -> Pairs:
    """The pairs of `parts`, in order, as one set (a part without parents mixes with itself)."""
    parents = None
    if any(p.parents is not None for p in parts):
        parents = torch.cat([p.images if p.parents is None else p.parents for p in parts])
    return Pairs(
        [i for p in parts for i in p.ids],
        [x for p in parts for x in p.labels],
        torch.cat([p.images for p in parts]),
        torch.cat([p.masks for p in parts]),
        parents,
    )
