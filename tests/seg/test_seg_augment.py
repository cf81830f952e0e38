"""Segmentation training sets: names, determinism per seed, joint image/mask geometry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from meddap.common.errors import MeddapError
from meddap.seg.augment import STEPS, augment, augmenter
from meddap.trainsets import SEGMENTER, check_listed, parse, planned
from meddap.trainsets.augmented import AUGMENTATIONS, DEEPSTACK

REPO = Path(__file__).resolve().parents[2]
INTENSITY = ("noise", "brightness", "contrast", "resolution", "gamma")
SPATIAL = ("rotate", "scale", "mirror")


def _pairs(n: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose bright region is their mask (an off-centre box) plus texture."""
    masks = torch.zeros(n, 1, size, size)
    masks[:, :, 6:22, 4:24] = 1
    texture = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    images = 0.2 + 0.6 * masks + 0.05 * texture
    return images, masks


def test_every_name_may_be_listed_and_each_has_a_step() -> None:
    assert set(STEPS) == set(AUGMENTATIONS) and set(INTENSITY + SPATIAL) == set(AUGMENTATIONS)
    check_listed(["real", *(f"aug-{n}" for n in (*AUGMENTATIONS, DEEPSTACK))], "key")
    with pytest.raises(MeddapError, match="config key 'key.1': 'mask-real-1to2' is planned from"):
        check_listed(["real", "mask-real-1to2"], "key")
    assert [parse(n).augmentations for n in ("real", "aug-mirror")] == [(), ("mirror",)]
    assert parse("aug-deepstack").augmentations == AUGMENTATIONS
    assert augmenter(parse("real"), 0.5) is None


@pytest.mark.parametrize("name", ["aug-blur", "mirror", "r2-none-50", "aug-"])
def test_unknown_trainsets_are_named(name: str) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(MeddapError, match=re.escape(repr(name))) as err:
        planned(name, config, SEGMENTER)
    assert "\n" not in str(err.value)


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    images, masks = _pairs()
    transform = augmenter(parse("aug-deepstack"), 0.5)
    first = augment(transform, images, masks, seed=7)
    again = augment(transform, images, masks, seed=7)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], augment(transform, images, masks, seed=8)[0])
    assert type(first[0]) is torch.Tensor and first[0].shape == images.shape  # no MetaTensor


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_steps_leave_the_mask_alone(name: str) -> None:
    images, masks = _pairs()
    changed, same = augment(augmenter(parse(f"aug-{name}"), 1.0), images, masks, seed=1)
    assert torch.equal(same, masks) and not torch.equal(changed, images)


@pytest.mark.parametrize("name", [*SPATIAL, DEEPSTACK])
def test_spatial_steps_move_image_and_mask_together(name: str) -> None:
    images, masks = _pairs()
    moved_images, moved_masks = augment(augmenter(parse(f"aug-{name}"), 1.0), images, masks, seed=3)
    assert set(moved_masks.unique().tolist()) <= {0.0, 1.0}  # nearest: still binary
    assert not torch.equal(moved_masks, masks)
    bright = moved_images > 0.5  # where the image's box went
    overlap = (bright & moved_masks.bool()).sum() / (bright | moved_masks.bool()).sum()
    assert overlap > (0.8 if name == DEEPSTACK else 0.95)  # deepstack also changes intensity


def test_mirror_flips_left_right() -> None:
    images, masks = _pairs(n=1)
    flipped_images, flipped_masks = augment(
        augmenter(parse("aug-mirror"), 1.0), images, masks, seed=0
    )
    assert torch.equal(flipped_masks, masks.flip(-1))
    assert torch.equal(flipped_images, images.flip(-1))
