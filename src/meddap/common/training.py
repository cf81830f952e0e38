"""A resumable supervised training loop: epochs, validation, best-epoch selection, checkpoints.

The loop owns what every supervised model shares: the shuffling generator, the optimizer step
(with mixed precision when asked), validation after every epoch, keeping the best epoch and a
checkpoint after every epoch that a rerun resumes from (on CPU with the bytes of an
uninterrupted run). A `Task` supplies the rest: its batches (drawn and augmented), its loss, its
validation scores and the score key that ranks epochs. A task that trains more than the model
(e.g. the discriminators of an adversarial loss) also has `after_step(output, targets)`, called
after every optimizer step with the batch's detached output, and `state_dict()` /
`load_state_dict(state)`, what the checkpoint saves and restores besides the model's.

Selection: the kept epoch has the highest `task.score_key(entry)`; ties go to the earlier epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from meddap.common.checkpoint import Checkpoint
from meddap.common.runtime import autocast, deterministic, grad_scaler, restore_rng, rng_state

log = logging.getLogger(__name__)
Entry = dict[str, float]


@dataclass
class Batch:
    """Model inputs and the targets the loss compares the model's output with."""

    inputs: torch.Tensor
    targets: torch.Tensor | Mapping[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class Validation:
    """Scores of one validation pass, and outputs kept with the best epoch (tensors)."""

    scores: dict[str, float]
    outputs: Any


class Task(Protocol):
    """The task-specific parts of training (a classifier, a segmenter, ...)."""

    def batches(self, order: torch.Generator) -> Iterable[Batch]:
        """One epoch's training batches, shuffled with `order` (and augmented)."""
        ...

    def loss(self, output: Any, targets: Any) -> torch.Tensor:
        """The mean loss of a batch, from the model's output and the batch's targets."""
        ...

    def validate(self, model: torch.nn.Module) -> Validation:
        """Scores (and outputs) of `model` on the validation data."""
        ...

    def score_key(self, entry: Entry) -> Any:
        """What ranks an epoch's history entry: higher is better."""
        ...


@dataclass
class Fit:
    """The best epoch of a run: its weights (CPU), validation outputs, and the full history."""

    state: dict[str, torch.Tensor]
    epoch: int
    outputs: Any
    history: list[Entry]


def shuffled_batches(n: int, size: int, order: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one joins the one before (BatchNorm needs 2)."""
    batches = list(torch.randperm(n, generator=order).split(size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    *,
    epochs: int,
    seed: int,
    precision: str = "no",
    checkpoint: Checkpoint | None = None,
) -> Fit:
    """Train `model` (already on its device) for `epochs` epochs; return the best one.

    `seed` seeds the shuffling; `precision` is a resolved one ('no', 'fp16', 'bf16'). With
    `checkpoint`, continue from its file if it holds this run, and save it after every epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = next(model.parameters()).device
    order = torch.Generator().manual_seed(seed)
    scaler = grad_scaler(device, precision)
    with deterministic(device):
        best = _resume(checkpoint, model, optimizer, scaler, order, task) if checkpoint else None
        history = best.history if best else []
        for epoch in range(len(history) + 1, epochs + 1):
            loss = train_epoch(model, optimizer, task, order, precision, scaler)
            validation = task.validate(model)
            entry = {"epoch": epoch, "train_loss": loss, **validation.scores}
            log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in entry.items()))
            if best is None or task.score_key(entry) > task.score_key(history[best.epoch - 1]):
                best = Fit(_cpu_copy(model.state_dict()), epoch, validation.outputs, history)
            history.append(entry)
            if checkpoint:
                checkpoint.save(_state(model, optimizer, scaler, order, best, task))
    return best


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    order: torch.Generator,
    precision: str = "no",
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One pass over the task's batches; returns the mean training loss per example."""
    model.train()
    device = next(model.parameters()).device
    after_step = getattr(task, "after_step", None)
    total, seen = 0.0, 0
    for batch in task.batches(order):
        optimizer.zero_grad()
        targets = _to(batch.targets, device)
        with autocast(device, precision):
            output = model(batch.inputs.to(device))
            loss = task.loss(output, targets)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if after_step is not None:
            after_step(_detached(output), targets)
        total += loss.item() * len(batch)
        seen += len(batch)
    return total / seen


def _to(targets: torch.Tensor | Mapping[str, torch.Tensor], device: torch.device) -> Any:
    if isinstance(targets, Mapping):
        return {k: v.to(device) for k, v in targets.items()}
    return targets.to(device)


def _detached(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    return [o.detach() for o in output]


def _cpu_copy(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    order: torch.Generator,
    best: Fit,
    task: Task,
) -> dict[str, Any]:
    """All that the next epochs depend on: weights, optimizer, scaler, RNGs, task, best, history."""
    return {
        "epoch": len(best.history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler else None,
        "rng": rng_state({"order": order}),  # augmentations and dropout draw from torch's
        "task": task.state_dict() if hasattr(task, "state_dict") else None,
        "best": {"state": best.state, "epoch": best.epoch, "outputs": best.outputs},
        "history": best.history,
    }


def _resume(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    order: torch.Generator,
    task: Task,
) -> Fit | None:
    """Restore a saved state of this run and return its best epoch (None without one)."""
    state = checkpoint.load()
    if state is None:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], {"order": order})
    if hasattr(task, "load_state_dict"):
        task.load_state_dict(state["task"])
    log.info("resumed from %s (epoch %d)", checkpoint.path, state["epoch"])
    best = state["best"]
    return Fit(best["state"], best["epoch"], best["outputs"], state["history"])
