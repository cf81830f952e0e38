"""MTL's training task for the shared loop (`meddap.common.training`).

Batches draw from the train split, each image repeated by deterministic oversampling when `do`
is on; targets are the masks and the class indices; the loss is `MultiTaskLoss`. After every
validation the model predicts the val split (mask = logit > 0 of the main head, class = argmax) and
the validation is ranked by λ · val Dice (normals included) + (1 - λ) · val accuracy, then val loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from meddap.common.labels import CLASSES
from meddap.common.training import Batch, Validation, shuffled_batches
from meddap.multitask.losses import MultiTaskLoss
from meddap.multitask.metrics import joint_scores
from meddap.multitask.oversampling import oversampled
from meddap.seg.data import Pairs
from meddap.seg.models import heads


def class_indices(labels: list[str]) -> torch.Tensor:
    """Labels as indices into CLASSES."""
    return torch.tensor([CLASSES.index(label) for label in labels])


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class probabilities (N, C), main-head mask logits (N, 1, S, S), on the CPU, eval mode."""
    model.eval()
    device = next(model.parameters()).device
    probabilities, logits = [], []
    for batch in images.split(batch_size):
        segmentation, classes = model(batch.to(device))
        probabilities.append(classes.float().softmax(1).cpu())
        logits.append(heads(segmentation)[0].float().cpu())
    probabilities, logits = torch.cat(probabilities), torch.cat(logits)
    return probabilities, logits, logits > 0


@dataclass
class MultiTaskTask:
    """Joint (or, with λ 0 or 1, single-task) training of a `MultiTaskNet`."""

    train: Pairs
    val: Pairs
    batch_size: int
    criterion: MultiTaskLoss
    oversample: bool
    _order: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        labels = self.train.labels
        self._order = torch.tensor(oversampled(labels) if self.oversample else range(len(labels)))
        self._classes = class_indices(labels)

    def indices(self, order: torch.Generator) -> list[torch.Tensor]:
        """One shuffled pass over the (oversampled) train images."""
        return [
            self._order[pick] for pick in shuffled_batches(len(self._order), self.batch_size, order)
        ]

    def batch(self, index: torch.Tensor, order: torch.Generator) -> Batch:
        """The images of `index` with their masks and classes."""
        targets = {"masks": self.train.masks[index], "classes": self._classes[index]}
        return Batch(self.train.images[index], targets)

    def loss(self, output: tuple[object, torch.Tensor], targets: dict) -> torch.Tensor:
        return self.criterion(output, targets["masks"], targets["classes"])

    def validate(self, model: torch.nn.Module) -> Validation:
        """Val Dice, accuracy and loss; the predicted classes and masks as outputs."""
        probabilities, logits, masks = predict(model, self.val.images, self.batch_size)
        classes = probabilities.argmax(1)
        truth = class_indices(self.val.labels)
        scores = joint_scores(classes, masks, truth, self.val.masks)
        loss = self.criterion(([logits], probabilities.log()), self.val.masks, truth).item()
        entry = {"val_dice": scores["dice"]["mean"], "val_accuracy": scores["accuracy"]}
        return Validation({**entry, "val_loss": loss}, (classes, masks))

    def score_key(self, entry: dict[str, float]) -> tuple[float, float]:
        """λ-weighted val Dice and accuracy up, then val loss down."""
        lam = self.criterion.lam
        return lam * entry["val_dice"] + (1 - lam) * entry["val_accuracy"], -entry["val_loss"]
