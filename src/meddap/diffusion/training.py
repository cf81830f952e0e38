"""Diffusion training shared by LoRA, base pretraining and ControlNet fine-tuning/pretraining.

`noised_batch` draws noise (plus diffusers' offset noise when asked) and timesteps from one
generator and returns the target of the scheduler's `prediction_type` (the noise, or v);
`diffusion_loss` is the MSE of a model's prediction against it (eq. 1 of the paper), `unet_loss`
that of a text-conditioned UNet. `EpochOrder` gives each step's batch of row indices from a
seeded permutation per epoch. `StepLoop` runs the optimizer steps from where its checkpoint left
off and saves it every `every` steps (atomically, `meddap.common.checkpoint`): the parts it is
given (weights, optimizers, schedules), the RNG states and the log rows; on CPU a resumed run
ends with the bytes of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from meddap.common.checkpoint import Checkpoint
from meddap.common.runtime import StepMeter, restore_rng, rng_state
from meddap.common.seeds import derive_seed

log = logging.getLogger(__name__)
Row = dict[str, Any]
Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (noisy latents, timesteps)


class Stateful(Protocol):
    """What a checkpoint saves and restores: a model, optimizer, LR schedule, grad scaler..."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


def noised_batch(
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    generator: torch.Generator,
    noise_offset: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, timesteps, target): random timesteps, the noise (or v) to predict.

    `noise_offset` adds that much per-image, per-channel constant noise (diffusers'
    `--noise_offset`): without it the noised latent's mean survives even the last timestep, so a
    model cannot learn to set an image's mean brightness from the prompt.
    """
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    if noise_offset:
        shape = (*latents.shape[:2], 1, 1)
        noise = noise + noise_offset * torch.randn(shape, generator=generator).to(latents)
    steps = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator
    ).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, steps)
    if scheduler.config.prediction_type == "v_prediction":
        return noisy, steps, scheduler.get_velocity(latents, noise, steps)
    return noisy, steps, noise


def diffusion_loss(
    predict: Predict,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    generator: torch.Generator,
    noise_offset: float = 0.0,
) -> torch.Tensor:
    """MSE of `predict(noisy latents, timesteps)` against the target of `noised_batch`."""
    noisy, steps, target = noised_batch(scheduler, latents, generator, noise_offset)
    return F.mse_loss(predict(noisy, steps).float(), target.float())


def unet_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    generator: torch.Generator,
    noise_offset: float = 0.0,
) -> torch.Tensor:
    """`diffusion_loss` of `unet` conditioned on the text embeddings `text`."""

    def predict(noisy: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return unet(noisy, steps, encoder_hidden_states=text, return_dict=False)[0]

    return diffusion_loss(predict, scheduler, latents, generator, noise_offset)


def optimizer_update(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    backward: Callable[[torch.Tensor], Any] = torch.Tensor.backward,
) -> float:
    """Backpropagate `loss` with `backward` (e.g. an Accelerator's, which scales it), step
    `optimizer` and clear its gradients; returns the loss."""
    backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


@dataclass(frozen=True)
class EpochOrder:
    """Batches of `batch_size` of `n` rows, a permutation per epoch seeded by `seed`, `parts` and
    the epoch; an epoch's last batch is partial, or (with `full`) its leftover rows are skipped."""

    n: int
    batch_size: int
    seed: int
    parts: tuple[object, ...] = ()
    full: bool = False

    @property
    def per_epoch(self) -> int:
        """Steps (batches) per epoch."""
        return self.n // self.batch_size if self.full else math.ceil(self.n / self.batch_size)

    def epoch(self, step: int) -> int:
        """The epoch (from 0) of `step` (from 0)."""
        return step // self.per_epoch

    def batch(self, step: int) -> torch.Tensor:
        """The row indices of `step`."""
        epoch, within = divmod(step, self.per_epoch)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, *self.parts, epoch))
        order = torch.randperm(self.n, generator=generator)
        return order[within * self.batch_size : (within + 1) * self.batch_size]


@dataclass
class StepLoop:
    """`total` optimizer steps that resume from `checkpoint` and save it every `every` steps.

    `parts` are what the steps change besides the RNGs (saved and restored by name, in order);
    `generator` is the steps' noise generator; `rows` holds one log row per step done.
    """

    total: int
    generator: torch.Generator
    parts: dict[str, Stateful]
    checkpoint: Checkpoint | None = None
    every: int = 0
    rows: list[Row] = field(default_factory=list)

    @property
    def step(self) -> int:
        """Steps done."""
        return len(self.rows)

    def run(
        self, train_step: Callable[[int], Row], desc: str, shown: Sequence[str] = ()
    ) -> list[Row]:
        """Resume, then call `train_step(step)` (one optimizer step; returns its row, with the
        "loss") until `total` steps are done. Rows gain "step" (from 1) first (no times: a log
        is the same bytes on a rerun; a job's times are in its provenance record); the progress
        bar shows the loss and the row's `shown` fields."""
        self.resume()
        meter = StepMeter(self.total, desc, start=self.step)
        while self.step < self.total:
            row = train_step(self.step)
            self.rows.append({"step": self.step + 1, **row})
            meter.update(row["loss"], **{key: row[key] for key in shown})
            if self.checkpoint is not None and self._due():
                self._save(self.checkpoint)
        meter.close()
        return self.rows

    def _due(self) -> bool:
        """Whether to checkpoint now: every `every` steps, but not after the last."""
        return self.step % self.every == 0 and self.step < self.total

    def _save(self, checkpoint: Checkpoint) -> None:
        """Save the parts, the RNG states and the rows of the steps done."""
        parts = {name: part.state_dict() for name, part in self.parts.items()}
        rng = rng_state({"noise": self.generator})
        checkpoint.save({"step": self.step, "rows": self.rows, "rng": rng, **parts})
        log.info("checkpoint at step %d in %s", self.step, checkpoint.path)

    def resume(self) -> None:
        """Restore the checkpoint of this run, if there is one."""
        if self.checkpoint is None:
            return
        state = self.checkpoint.load(required=("rows", "rng", *self.parts))
        if state is None:
            return
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        restore_rng(state["rng"], {"noise": self.generator})
        self.rows = list(state["rows"])
        log.info("resumed from %s (step %d)", self.checkpoint.path, self.step)
