"""A resumable supervised training loop on an update budget: schedule, validation, early stop.

Every training set of a model family trains on the same budget of optimizer updates
(`Budget.steps`), whatever its size, so rows compared in one table get the same compute. The
loop owns what every supervised model shares: the shuffling generator and the stream of index
batches across passes over the training set, the optimizer step (with mixed precision when
asked), the learning rate (linear warm-up over `warmup` updates, then cosine to zero at `steps`),
validation every `eval_every` updates, keeping the best validated update, early stopping after
`patience` validations without improvement, and a checkpoint after every validation that a rerun
resumes from (on CPU with the bytes of an uninterrupted run). A `Task` supplies the rest: the
index batches of one pass (shuffled, balanced or oversampled), the batch of an index (read and
augmented), the loss, the validation scores and the score key that ranks validations. A task that
trains more than the model (e.g. the discriminators of an adversarial loss) also has
`after_step(output, targets)`, called after every optimizer step with the batch's detached
output, and `state_dict()` / `load_state_dict(state)`, what the checkpoint saves besides.

Selection: the kept update has the highest `task.score_key(entry)`; ties go to the earlier one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from meddap.common.checkpoint import Checkpoint
from meddap.common.errors import MeddapError
from meddap.common.runtime import autocast, deterministic, grad_scaler, restore_rng, rng_state
from meddap.common.settings import Budget

log = logging.getLogger(__name__)
Entry = dict[str, float]
LATE = 0.9  # a kept update after this fraction of the budget may still be improving


@dataclass
class Batch:
    """Model inputs and the targets the loss compares the model's output with."""

    inputs: torch.Tensor
    targets: torch.Tensor | Mapping[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class Validation:
    """Scores of one validation pass, and outputs kept with the best update (tensors)."""

    scores: dict[str, float]
    outputs: Any


class Task(Protocol):
    """The task-specific parts of training (a classifier, a segmenter, ...)."""

    def indices(self, order: torch.Generator) -> list[torch.Tensor]:
        """The index batches of one pass over the training data, drawn with `order`."""
        ...

    def batch(self, index: torch.Tensor, order: torch.Generator) -> Batch:
        """The (augmented) training batch of `index`; augmentation may draw from `order`."""
        ...

    def loss(self, output: Any, targets: Any) -> torch.Tensor:
        """The mean loss of a batch, from the model's output and the batch's targets."""
        ...

    def validate(self, model: torch.nn.Module) -> Validation:
        """Scores (and outputs) of `model` on the validation data."""
        ...

    def score_key(self, entry: Entry) -> Any:
        """What ranks a validation's history entry: higher is better."""
        ...


@dataclass
class Fit:
    """The best validated update of a run: weights (CPU), validation outputs, and the run."""

    state: dict[str, torch.Tensor]
    update: int
    outputs: Any
    history: list[Entry]
    stopped_early: bool = False
    passes: int = 0  # passes over the training data the run started

    @property
    def updates(self) -> int:
        """Optimizer updates made (the last validation's)."""
        return int(self.history[-1]["update"]) if self.history else 0

    def record(self, budget: Budget) -> dict[str, Any]:
        """What fit.json and metrics.json say about the run's compute and selection."""
        return {
            "budget": budget.params(),
            "updates": self.updates,
            "best_update": self.update,
            "stopped_early": self.stopped_early,
            "best_at_end": self.best_at_end(budget),
            "passes": self.passes,
            "history": self.history,
        }

    def best_at_end(self, budget: Budget) -> bool:
        """Whether the run used its whole budget and kept an update in its last 10 %."""
        return not self.stopped_early and self.update > LATE * budget.steps


@dataclass
class Stream:
    """Index batches across passes: what is left of the current pass, and passes started."""

    pending: list[torch.Tensor] = field(default_factory=list)
    passes: int = 0

    def next(self, task: Task, order: torch.Generator) -> torch.Tensor:
        """The next index batch, starting a new pass when the current one is used up."""
        if not self.pending:
            self.pending = list(task.indices(order))
            self.passes += 1
        return self.pending.pop(0)


def shuffled_batches(n: int, size: int, order: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one joins the one before (BatchNorm needs 2)."""
    return chunked(torch.randperm(n, generator=order), size)


def chunked(indices: torch.Tensor, size: int) -> list[torch.Tensor]:
    """`indices` in batches of `size`; a last batch of one joins the one before."""
    batches = list(indices.split(size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def check_budget(budget: Budget, key: str) -> None:
    """Stop naming `key` when the budget cannot run (no update, or no validation)."""
    if budget.steps < 1:
        raise MeddapError(f"config key {key}.steps must be at least 1, got {budget.steps}")
    if not 1 <= budget.eval_every <= budget.steps:
        raise MeddapError(
            f"config key {key}.eval_every must be between 1 and {key}.steps ({budget.steps}), "
            f"got {budget.eval_every}"
        )
    if not 0 <= budget.warmup < budget.steps:
        raise MeddapError(f"config key {key}.warmup must be in [0, steps), got {budget.warmup}")
    if budget.patience is not None and budget.patience < 1:
        raise MeddapError(f"config key {key}.patience must be at least 1 or null")


def learning_rate_factor(budget: Budget, update: int) -> float:
    """The learning rate's factor before update `update` + 1: linear warm-up, then cosine to 0."""
    if update < budget.warmup:
        return (update + 1) / budget.warmup
    progress = (update - budget.warmup) / max(1, budget.steps - budget.warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    *,
    budget: Budget,
    seed: int,
    precision: str = "no",
    checkpoint: Checkpoint | None = None,
) -> Fit:
    """Train `model` (already on its device) on `budget`; return the best validated update.

    `seed` seeds the shuffling; `precision` is a resolved one ('no', 'fp16', 'bf16'). With
    `checkpoint`, continue from its file if it holds this run, and save it after every validation.
    """
    check_budget(budget, "training")
    device = next(model.parameters()).device
    order = torch.Generator().manual_seed(seed)
    scaler = grad_scaler(device, precision)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: learning_rate_factor(budget, update)
    )
    loop = Loop(model, optimizer, schedule, scaler, task, order, precision)
    with deterministic(device):
        best = loop.resume(checkpoint) if checkpoint else None
        history = best.history if best else []
        while not _done(best, history, budget):
            count = min(budget.eval_every, budget.steps - loop.updates)
            loss = train_steps(loop, count)
            validation = task.validate(model)
            entry = {"update": loop.updates, "lr": _lr(optimizer), "train_loss": loss}
            entry |= validation.scores
            log.info("update %d: %s", loop.updates, _fmt(entry))
            if best is None or task.score_key(entry) > task.score_key(_entry(best)):
                best = Fit(_cpu_copy(model.state_dict()), loop.updates, validation.outputs, history)
            history.append(entry)
            best.stopped_early = _patience_spent(best, history, budget)
            if checkpoint:
                checkpoint.save(loop.state(best))
    best.passes = loop.stream.passes
    _report(best, budget)
    return best


def _done(best: Fit | None, history: list[Entry], budget: Budget) -> bool:
    """Whether the budget is spent or the run stopped early."""
    if best is None:
        return False
    return best.stopped_early or history[-1]["update"] >= budget.steps


def _patience_spent(best: Fit, history: list[Entry], budget: Budget) -> bool:
    """`patience` validations since the best one, with budget left."""
    if budget.patience is None or history[-1]["update"] >= budget.steps:
        return False
    since = sum(1 for entry in history if entry["update"] > best.update)
    return since >= budget.patience


def _report(best: Fit, budget: Budget) -> None:
    """Say how the run ended; warn when the kept update is in the budget's last 10 %."""
    how = "stopped early" if best.stopped_early else "used its budget"
    log.info("%s after %d updates; kept update %d", how, best.updates, best.update)
    if best.best_at_end(budget):
        log.warning(
            "the kept update %d is in the last 10 %% of the %d-update budget: the model may "
            "still be improving (raise training.steps)",
            best.update,
            budget.steps,
        )


@dataclass
class Loop:
    """What trains between validations: model, optimizer, schedule, batches and their progress."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    task: Task
    order: torch.Generator
    precision: str
    stream: Stream = field(default_factory=Stream)
    updates: int = 0

    def state(self, best: Fit) -> dict[str, Any]:
        """All that the next updates depend on: weights, optimizer, RNGs, batches, best, history."""
        return {
            "update": self.updates,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rng_state({"order": self.order}),  # augmentation and dropout draw from torch's
            "pending": self.stream.pending,
            "passes": self.stream.passes,
            "task": self.task.state_dict() if hasattr(self.task, "state_dict") else None,
            "best": {"state": best.state, "update": best.update, "outputs": best.outputs},
            "stopped_early": best.stopped_early,
            "history": best.history,
        }

    def resume(self, checkpoint: Checkpoint) -> Fit | None:
        """Restore a saved state of this run and return its best update (None without one)."""
        state = checkpoint.load()
        if state is None:
            return None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"], {"order": self.order})
        self.stream = Stream(list(state["pending"]), state["passes"])
        self.updates = state["update"]
        if hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state["task"])
        log.info("resumed from %s (update %d)", checkpoint.path, self.updates)
        best = state["best"]
        kept = Fit(best["state"], best["update"], best["outputs"], state["history"])
        kept.stopped_early = state["stopped_early"]
        return kept


def constant_loop(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task, order: torch.Generator
) -> Loop:
    """A loop at the optimizer's own learning rate, without validation (benchmarks, tests)."""
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return Loop(model, optimizer, schedule, None, task, order, "no")


def train_steps(loop: Loop, count: int) -> float:
    """`count` optimizer updates; returns their mean training loss per example."""
    loop.model.train()
    device = next(loop.model.parameters()).device
    after_step = getattr(loop.task, "after_step", None)
    total, seen = 0.0, 0
    for _ in range(count):
        batch = loop.task.batch(loop.stream.next(loop.task, loop.order), loop.order)
        loop.optimizer.zero_grad()
        targets = _to(batch.targets, device)
        with autocast(device, loop.precision):
            output = loop.model(batch.inputs.to(device))
            loss = loop.task.loss(output, targets)
        if loop.scaler is None:
            loss.backward()
            loop.optimizer.step()
        else:
            loop.scaler.scale(loss).backward()
            loop.scaler.step(loop.optimizer)
            loop.scaler.update()
        loop.schedule.step()
        loop.updates += 1
        if after_step is not None:
            after_step(_detached(output), targets)
        total += loss.item() * len(batch)
        seen += len(batch)
    return total / seen


def _entry(best: Fit) -> Entry:
    return next(entry for entry in best.history if entry["update"] == best.update)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _fmt(entry: Entry) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "update")


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
