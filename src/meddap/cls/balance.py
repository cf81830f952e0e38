"""Class balance of a classifier's training batches (`classifier.balance`).

`sampling`: each pass draws as many examples as the training set holds, with replacement, each
with probability inverse to its class's count, so every class present is equally likely in a
batch. `loss`: the usual shuffled passes, with cross-entropy weighted per class by
n / (classes present x class count) (scikit-learn's "balanced" weights). `none`: neither.
"""

from __future__ import annotations

import torch
from sklearn.utils.class_weight import compute_class_weight

from meddap.common.errors import MeddapError
from meddap.common.training import chunked, shuffled_batches

BALANCE = ("sampling", "loss", "none")


def check_balance(balance: str) -> None:
    """Stop naming the key when `balance` is not one of BALANCE."""
    if balance not in BALANCE:
        raise MeddapError(
            f"config key classifier.balance: {balance!r} is not one of {', '.join(BALANCE)}"
        )


def class_weights(targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Balanced per-class weights; 0 for a class absent from `targets`."""
    present = torch.unique(targets).numpy()
    balanced = compute_class_weight("balanced", classes=present, y=targets.numpy())
    weights = torch.zeros(n_classes, dtype=torch.float32)
    weights[torch.from_numpy(present)] = torch.from_numpy(balanced).float()
    return weights


def pass_indices(
    targets: torch.Tensor, batch_size: int, balance: str, order: torch.Generator
) -> list[torch.Tensor]:
    """One pass's index batches: class-balanced draws for `sampling`, else a shuffle."""
    if balance != "sampling":
        return shuffled_batches(len(targets), batch_size, order)
    counts = torch.bincount(targets).float()
    drawn = torch.multinomial(1.0 / counts[targets], len(targets), True, generator=order)
    return chunked(drawn, batch_size)
