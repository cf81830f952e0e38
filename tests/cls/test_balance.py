"""Class balance of classifier batches: balanced draws, balanced loss weights, the key's check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from meddap.cls.balance import check_balance, class_weights, pass_indices
from meddap.cls.train import ClassifierTask, Images
from meddap.common.errors import MeddapError

# 60 normal, 30 benign, 10 malignant: the majority class is 6x the rarest
TARGETS = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)


def _class_mix(balance: str, passes: int = 50) -> torch.Tensor:
    """The share of each class among the examples of `passes` passes."""
    order = torch.Generator().manual_seed(0)
    drawn = [torch.cat(pass_indices(TARGETS, 8, balance, order)) for _ in range(passes)]
    return torch.bincount(TARGETS[torch.cat(drawn)], minlength=3).float() / (100 * passes)


def test_balanced_sampling_draws_every_class_equally_often() -> None:
    mix = _class_mix("sampling")
    assert torch.allclose(mix, torch.full((3,), 1 / 3), atol=0.03)
    order = torch.Generator().manual_seed(0)
    batches = pass_indices(TARGETS, 8, "sampling", order)
    assert sum(len(b) for b in batches) == len(TARGETS)  # a pass is as long as the data
    assert len({tuple(b.tolist()) for b in batches}) > 1


@pytest.mark.parametrize("balance", ["loss", "none"])
def test_other_modes_see_each_example_once_per_pass(balance: str) -> None:
    order = torch.Generator().manual_seed(0)
    drawn = torch.cat(pass_indices(TARGETS, 8, balance, order))
    assert sorted(drawn.tolist()) == list(range(100))
    assert torch.allclose(_class_mix(balance), torch.tensor([0.6, 0.3, 0.1]))


def test_balanced_weights_equalise_each_class_total() -> None:
    weights = class_weights(TARGETS, 3)
    totals = torch.bincount(TARGETS, minlength=3).float() * weights
    assert torch.allclose(totals, torch.full((3,), 100 / 3))
    assert class_weights(torch.tensor([0, 0, 2]), 3)[1] == 0  # an absent class weighs nothing


def test_the_loss_mode_weights_the_cross_entropy() -> None:
    images = Images(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), TARGETS)
    logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 0])
    weighted = ClassifierTask(images, images, 8, None, "loss").loss(logits, targets)
    plain = ClassifierTask(images, images, 8, None, "sampling").loss(logits, targets)
    expected = F.cross_entropy(logits, targets, weight=class_weights(TARGETS, 3))
    assert torch.isclose(weighted, expected) and not torch.isclose(weighted, plain)


def test_an_unknown_mode_names_the_key() -> None:
    with pytest.raises(MeddapError, match=r"classifier\.balance: 'smote' is not one of"):
        check_balance("smote")
