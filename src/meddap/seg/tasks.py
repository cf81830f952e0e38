"""Segmenter training tasks for the shared loop (`meddap.common.training`).

`SegmenterTask`: Adam's loss is Dice + cross-entropy (`dice_ce`, MONAI's `DiceCELoss` on the
sigmoid; `dice_focal`: `DiceFocalLoss`) over every head of a deep-supervised model
(`DeepSupervisionLoss`, weights 1, 1/2, 1/4, ... from the main head). `AdversarialTask`: a
`dsunet-s<n>[-adv]` follows DSUNet eq. (1) instead (`segmentation.loss` does not apply): the
sum over its last n decoder stages of alpha_n (1 - Dice(P_n, G)) (MONAI `DiceLoss` on the
sigmoid) and, with `-adv`, beta times the non-saturating generator term -log D_n(P_n) (BCE with
logits against "real": the same fixed point as eq. (1)'s log(1 - D_n(P_n)), without its
vanishing gradient while D_n wins). After each generator step the discriminators take one Adam
step on BCE of real masks (1) vs the detached maps (0). Both rank validations by mean val Dice
(MTL's empty-mask convention), then val loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceFocalLoss, DiceLoss
from monai.transforms import Compose

from meddap.common.settings import Segmentation
from meddap.common.training import Batch, Validation, shuffled_batches
from meddap.seg.augment import augment
from meddap.seg.data import Pairs
from meddap.seg.metrics import overlap_scores
from meddap.seg.models import build_discriminator, heads, predict_logits
from meddap.seg.registry import Supervision, supervision_of

LOSSES = {"dice_ce": DiceCELoss, "dice_focal": DiceFocalLoss}
Output = torch.Tensor | list[torch.Tensor]


@dataclass
class SegmenterTask:
    """The loss over all heads on (augmented) train pairs; val Dice, then val loss, ranks."""

    train: Pairs
    val: Pairs
    batch_size: int
    augment: Compose | None
    criterion: torch.nn.Module

    def indices(self, order: torch.Generator) -> list[torch.Tensor]:
        """One shuffled pass over the train pairs."""
        return shuffled_batches(len(self.train), self.batch_size, order)

    def batch(self, index: torch.Tensor, order: torch.Generator) -> Batch:
        """The pairs of `index`; augmentation draws are seeded from `order`, one seed per batch."""
        images, masks = self.train.images[index], self.train.masks[index]
        if self.augment is not None:
            seed = int(torch.randint(2**31, (1,), generator=order))
            images, masks = augment(self.augment, images, masks, seed)
        return Batch(images, masks)

    def loss(self, output: Output, targets: torch.Tensor) -> torch.Tensor:
        """The deep-supervision-weighted loss of every head (one head: the plain loss)."""
        return self.criterion(heads(output), targets)

    def validate(self, model: torch.nn.Module) -> Validation:
        """Mean val Dice (MTL's empty-mask convention) and loss; val masks as outputs."""
        logits = predict_logits(model, self.val.images, self.batch_size)
        predicted = logits > 0
        dice = overlap_scores(predicted, self.val.masks)["dice"].mean()
        loss = self.criterion(logits, self.val.masks).item()
        return Validation({"val_dice": float(dice), "val_loss": loss}, predicted)

    def score_key(self, entry: dict[str, float]) -> tuple[float, float]:
        """Dice up, then loss down (the loop breaks ties by the earlier update)."""
        return entry["val_dice"], -entry["val_loss"]


@dataclass
class AdversarialTask(SegmenterTask):
    """DSUNet: weighted Dice on the supervised stages, plus one discriminator per stage.

    `criterion` weighs the first `stages` heads by alpha; without discriminators (no `-adv`)
    `optimizer` is None and nothing trains besides the segmenter.
    """

    stages: int
    beta: float
    discriminators: torch.nn.ModuleList
    optimizer: torch.optim.Optimizer | None

    def loss(self, output: Output, targets: torch.Tensor) -> torch.Tensor:
        """alpha-weighted Dice losses of the supervised heads, plus beta times -log D_n(P_n)."""
        supervised = heads(output)[: self.stages]
        loss = self.criterion(supervised, targets)
        for discriminator, logits in zip(self.discriminators, supervised, strict=False):
            judged = discriminator(logits.sigmoid())
            loss = loss + self.beta * _bce(judged, True)
        return loss

    def after_step(self, output: Output, targets: torch.Tensor) -> None:
        """One discriminator step: BCE of real masks vs the (detached) probability maps."""
        if self.optimizer is None:
            return
        maps = [h.float().sigmoid() for h in heads(output)[: self.stages]]
        loss = sum(
            _bce(d(targets), True) + _bce(d(m), False)
            for d, m in zip(self.discriminators, maps, strict=True)
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict:
        """The discriminators' weights and optimizer state."""
        optimizer = self.optimizer.state_dict() if self.optimizer else None
        return {"discriminators": self.discriminators.state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.discriminators.load_state_dict(state["discriminators"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean binary cross-entropy of discriminator logits against all-real or all-fake labels."""
    labels = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, labels)


def build_task(
    model: str,
    train: Pairs,
    val: Pairs,
    how: Segmentation,
    transform: Compose | None,
    device: torch.device,
) -> SegmenterTask:
    """The training task of `model` (`AdversarialTask` for dsunet-*, with its discriminators)."""
    supervision = supervision_of(model)
    if supervision is None:
        criterion = DeepSupervisionLoss(LOSSES[how.loss](sigmoid=True))
        return SegmenterTask(train, val, how.batch_size, transform, criterion)
    return _adversarial_task(supervision, train, val, how, transform, device)


def _adversarial_task(
    supervision: Supervision,
    train: Pairs,
    val: Pairs,
    how: Segmentation,
    transform: Compose | None,
    device: torch.device,
) -> AdversarialTask:
    """DSUNet's task; discriminators (built from torch's RNG) only with `-adv`."""
    ds = how.deep_supervision
    criterion = DeepSupervisionLoss(DiceLoss(sigmoid=True), weights=list(ds.alpha))
    count = supervision.stages if supervision.adversarial else 0
    nets = torch.nn.ModuleList(build_discriminator(how.channels) for _ in range(count))
    nets = nets.to(device)
    optimizer = torch.optim.Adam(nets.parameters(), lr=ds.discriminator_lr) if count else None
    batch = how.batch_size
    return AdversarialTask(
        train, val, batch, transform, criterion, supervision.stages, ds.beta, nets, optimizer
    )
