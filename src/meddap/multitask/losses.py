"""MTL's loss: L = λ L_seg + (1 - λ) L_cls, all from MONAI.

L_seg is Dice with ε = 1 (`smooth_nr = smooth_dr = 1`) on each deep-supervision output, weighted
w_i = 1 / i with i = 1 the main (full-resolution, final) head (`DeepSupervisionLoss` with explicit
weights); L_cls is the focal loss with γ = 2 over the three classes (softmax).
"""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceLoss, FocalLoss

from meddap.common.errors import MeddapError
from meddap.seg.models import heads


class MultiTaskLoss(torch.nn.Module):
    """λ-weighted sum of the deep-supervised Dice loss and the focal class loss."""

    def __init__(self, lam: float, n_heads: int) -> None:
        super().__init__()
        if not 0 <= lam <= 1:
            raise MeddapError(f"multi-task loss weight λ must lie in [0, 1], got {lam}")
        self.lam = lam
        dice = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
        self.seg = DeepSupervisionLoss(dice, weights=[1 / i for i in range(1, n_heads + 1)])
        self.cls = FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)

    def forward(
        self, output: tuple[object, torch.Tensor], masks: torch.Tensor, classes: torch.Tensor
    ) -> torch.Tensor:
        """`output` = (segmentation heads, class logits (N, C)); `classes` (N,) indices."""
        segmentation, logits = output
        loss = torch.zeros((), device=logits.device)
        if self.lam > 0:
            loss = loss + self.lam * self.seg(heads(segmentation), masks)
        if self.lam < 1:
            focal = self.cls(logits[..., None], classes[:, None, None])
            loss = loss + (1 - self.lam) * focal
        return loss
