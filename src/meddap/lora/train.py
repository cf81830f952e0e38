"""USLoRA training: LoRA on the UNet cross-attention of Stable Diffusion, one fold and rank.

Rank `FULL` ("full") fine-tunes every UNet weight instead (ClinicalPrior's full fine-tuning
baseline of the cross-domain table) and saves the UNet folder. Frozen VAE latents and text
embeddings come from the fold's cache (`lora_cache`). The loss, the epoch order and the step loop
are `meddap.diffusion.training`'s: training saves its state in checkpoint.pt beside the adapter
every `lora.checkpoint_every` steps and resumes from it; on CPU a resumed run ends with exactly
the adapter of an uninterrupted one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from meddap.common.atomic import atomic_dir, atomic_path, write_json
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.runtime import WEIGHT_DTYPES, resolve_precision
from meddap.common.seeds import derive_seed
from meddap.common.settings import Lora
from meddap.common.splits import split_ids
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.training import (
    EpochOrder,
    Row,
    Stateful,
    StepLoop,
    optimizer_update,
    unet_loss,
)
from meddap.lora.cache import LatentCache, load_cache
from meddap.lora.names import FULL
from meddap.lora.params import add_lora, param_counts

log = logging.getLogger(__name__)


def check_train_only(data: LatentCache, cache: str, splits: str, fold: int) -> None:
    """Refuse a cache that holds any image outside fold `fold`'s train split."""
    if data.meta.get("fold") != fold:
        raise MeddapError(f"{cache}: the cache is for fold {data.meta.get('fold')}, not {fold}")
    leaked = sorted(set(data.ids) - set(split_ids(splits, fold, "train")))
    if leaked:
        raise MeddapError(
            f"{cache}: {len(leaked)} image(s) are not in fold {fold}'s train split of {splits} "
            f"(first: {leaked[0]!r}); LoRA training must never see validation or test images"
        )


def adapt_unet(
    unet: UNet2DConditionModel, *, rank: int | str, targets: str, seed: int, checkpointing: bool
) -> None:
    """Add a seeded fp32 LoRA adapter to a frozen `unet` (rank FULL: train every weight in
    fp32) and put it in training mode."""
    torch.manual_seed(seed)
    if rank == FULL:
        unet.requires_grad_(True)
    else:
        add_lora(unet, rank, targets)
    cast_training_params(unet, torch.float32)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()


def optimizer_step(
    accelerator: Accelerator,
    unet: UNet2DConditionModel,
    optimizer: torch.optim.Optimizer,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """One AdamW step on the LoRA weights; returns the loss."""
    loss = unet_loss(unet, scheduler, latents, text, generator)
    return optimizer_update(loss, optimizer, accelerator.backward)


@dataclass
class Job:
    """What one training run needs, prepared by `_setup`."""

    data: LatentCache
    accelerator: Accelerator
    unet: UNet2DConditionModel
    optimizer: torch.optim.Optimizer
    scheduler: DDPMScheduler
    weight_dtype: torch.dtype
    run: dict[str, Any]


@dataclass
class TrainedWeights:
    """The weights being trained, as a checkpoint part: the LoRA layers, or the whole UNet for
    rank FULL."""

    unet: UNet2DConditionModel
    rank: int | str
    source: Path  # the checkpoint, named when its keys do not fit

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.unet.state_dict() if self.rank == FULL else get_peft_model_state_dict(self.unet)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if self.rank == FULL:
            self.unet.load_state_dict(state)
            return
        result = set_peft_model_state_dict(self.unet, state)
        if result.unexpected_keys:
            raise MeddapError(
                f"{self.source}: LoRA keys do not match the model ({result.unexpected_keys[0]})"
            )


def _parts(job: Job, checkpoint: Path) -> dict[str, Stateful]:
    """What the checkpoint saves besides RNGs and rows: trained weights, AdamW, the grad scaler."""
    parts: dict[str, Stateful] = {
        "weights": TrainedWeights(job.unet, job.run["rank"], checkpoint),
        "optimizer": job.optimizer,
    }
    scaler = job.accelerator.scaler
    return parts | ({"scaler": scaler} if scaler else {})


def save_adapter(unet: UNet2DConditionModel, weights: str, adapter_name: str = "default") -> None:
    """Write the adapter in diffusers format (loadable with `pipe.load_lora_weights`).

    No adapter metadata is stored: safetensors would write its entries in a random order, and
    diffusers' default for a checkpoint without alphas (alpha = rank) is the training setting.
    """
    layers = convert_state_dict_to_diffusers(
        get_peft_model_state_dict(unet, adapter_name=adapter_name)
    )
    with atomic_path(weights) as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp.parent, unet_lora_layers=layers, weight_name=tmp.name, safe_serialization=True
        )


def _check_settings(**values: float) -> None:
    for key, value in values.items():
        if value <= 0:
            raise MeddapError(f"config key 'lora.{key}': {value} must be positive")


def _setup(cache: str, splits: str, run: dict[str, Any]) -> Job:
    """Check the cache, load the base model and add the adapter described by `run`."""
    fold, rank, base_model = run["fold"], run["rank"], run["base_model"]
    data = load_cache(cache)
    check_train_only(data, cache, splits, fold)
    if data.meta.get("base_model") != base_model:
        raise MeddapError(
            f"{cache}: encoded with base model {data.meta.get('base_model')!r}, not {base_model!r}"
        )
    precision = resolve_precision(run["mixed_precision"], "lora.mixed_precision")
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    weight_dtype = WEIGHT_DTYPES[precision]
    pipe = load_pipeline(base_model, dtype=weight_dtype, device=accelerator.device)
    unet = pipe.unet
    adapt_unet(
        unet,
        rank=rank,
        targets=run["targets"],
        seed=derive_seed(run["seed"], fold, rank, "init"),
        checkpointing=run["gradient_checkpointing"],
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run["learning_rate"])
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return Job(data, accelerator, unet, optimizer, scheduler, weight_dtype, run)


def _batch(job: Job, index: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Latents (each mirrored with probability 1/2 when flips are cached) and text embeddings."""
    flipped = torch.rand(len(index), generator=generator) < 0.5
    if "latents_flip" not in job.data.tensors:
        flipped = torch.zeros_like(flipped)
    latents = job.data.latents(index, flipped, generator)
    device, dtype = job.accelerator.device, job.weight_dtype
    return latents.to(device, dtype), job.data.text(index).to(device, dtype)


def _fit(job: Job, order: EpochOrder, loop: StepLoop) -> list[Row]:
    """Train the steps of `loop` on the batches of `order`; the log rows."""
    unet, optimizer = job.accelerator.prepare(job.unet, job.optimizer)

    def train_step(step: int) -> Row:
        latents, text = _batch(job, order.batch(step), loop.generator)
        loss = optimizer_step(
            job.accelerator, unet, optimizer, job.scheduler, latents, text, loop.generator
        )
        return {"epoch": order.epoch(step) + 1, "loss": loss, "lr": optimizer.param_groups[0]["lr"]}

    return loop.run(train_step, f"LoRA fold{job.run['fold']} r{job.run['rank']}")


def save_unet(unet: UNet2DConditionModel, folder: str) -> None:
    """Write a fully fine-tuned UNet as a diffusers folder (`UNet2DConditionModel` loads it)."""
    with atomic_dir(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)


def _write_outputs(job: Job, rows: list[Row], weights: str, train_log: str, params: str) -> None:
    """Write the adapter (or UNet folder), the training log and the parameter counts, atomically."""
    unet = job.accelerator.unwrap_model(job.unet)
    (save_unet if job.run["rank"] == FULL else save_adapter)(unet, weights)
    with atomic_path(train_log) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    counts = param_counts(unet)
    extra = {"rank": job.run["rank"], "targets": job.run["targets"], "steps": len(rows)}
    write_json({**counts, **extra, "images": len(job.data)}, params)


def train_lora(
    *,
    cache: str,
    splits: str,
    weights: str,
    train_log: str,
    params_json: str,
    base_model: str,
    fold: int,
    rank: int | str,
    lora: Lora,
    seed: int,
) -> None:
    """Train the USLoRA adapter of fold `fold` and rank `rank` on the fold's cached train split.

    Writes the diffusers-format adapter `weights` (rank FULL: the UNet folder `weights`),
    `train_log` (step, epoch, loss, lr) and `params_json`; the checkpoint lives in
    checkpoint.pt beside `weights` until success.
    """
    _check_settings(
        epochs=lora.epochs,
        batch_size=lora.batch_size,
        learning_rate=lora.learning_rate,
        checkpoint_every=lora.checkpoint_every,
    )
    run = {
        **lora.params(),
        "cache_sha256": file_sha256(cache),
        "base_model": base_model,
        "fold": fold,
        "rank": rank,
        "seed": seed,
    }
    job = _setup(cache, splits, run)
    order = EpochOrder(len(job.data), lora.batch_size, derive_seed(seed, fold, rank, "order"))
    checkpoint = Checkpoint(Path(weights).parent / "checkpoint.pt", fingerprint(**run))
    loop = StepLoop(
        lora.epochs * order.per_epoch,
        torch.Generator().manual_seed(derive_seed(seed, fold, rank, "noise")),
        _parts(job, checkpoint.path),
        checkpoint,
        lora.checkpoint_every,
    )
    log.info("fold %d rank %s (%s): %d train images", fold, rank, lora.targets, len(job.data))
    rows = _fit(job, order, loop)
    _write_outputs(job, rows, weights, train_log, params_json)
    log.info("done: %d steps, final loss %.4f, adapter %s", len(rows), rows[-1]["loss"], weights)
    checkpoint.remove()
