"""Prediction refining (PR, MTL): make each image's class and mask agree, after training.

Mask = sigmoid > 0.5 (logit > 0), class = argmax. A `normal` class clears the mask; an empty
mask with a lesion class turns the class to `normal`. Incoherent images are those whose class
and mask disagree in this sense (refined predictions have none).
"""

from __future__ import annotations

import torch

from meddap.common.labels import CLASSES

NORMAL = CLASSES.index("normal")


def incoherent(classes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image (N,) of class indices and binary masks (N, 1, H, W): class and mask disagree."""
    empty = masks.flatten(1).sum(1) == 0
    return (classes == NORMAL) != empty


def refine(classes: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined (classes, masks): normal clears the mask, an empty mask makes the class normal."""
    normal = classes == NORMAL
    masks = torch.where(normal[:, None, None, None], torch.zeros_like(masks), masks)
    empty = masks.flatten(1).sum(1) == 0
    return torch.where(empty, torch.full_like(classes, NORMAL), classes), masks
