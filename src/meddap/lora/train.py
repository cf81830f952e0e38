"""USLoRA training: LoRA on the UNet cross-attention of Stable Diffusion, one fold and rank.

Rank `FULL` ("full") fine-tunes every UNet weight instead (seed 001's full fine-tuning
baseline of the cross-domain table) and saves the UNet folder. Frozen VAE latents and text
embeddings come from the fold's cache (`lora_cache`). Training saves its state in checkpoint.pt
beside the adapter every `lora.checkpoint_every` steps (`meddap.common.checkpoint`) and resumes
from it; on CPU a resumed run ends with exactly the adapter of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from meddap.common.atomic import atomic_dir, atomic_path, write_json
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.runtime import (
    WEIGHT_DTYPES,
    StepMeter,
    resolve_precision,
    restore_rng,
    rng_state,
)
from meddap.common.seeds import derive_seed
from meddap.common.settings import Lora
from meddap.common.splits import split_ids
from meddap.diffusion.pipeline import load_pipeline
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


def training_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    generator: torch.Generator,
    noise_offset: float = 0.0,
) -> torch.Tensor:
    """Noise-prediction MSE at random timesteps (eq. 1 of the paper; `noised_batch`)."""
    noisy, steps, target = noised_batch(scheduler, latents, generator, noise_offset)
    prediction = unet(noisy, steps, encoder_hidden_states=text, return_dict=False)[0]
    return F.mse_loss(prediction.float(), target.float())


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
    loss = training_loss(unet, scheduler, latents, text, generator)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


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
class Progress:
    """Where training stands: completed steps, log rows and the noise generator."""

    generator: torch.Generator
    step: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)


def trained_state(job: Job) -> dict[str, torch.Tensor]:
    """The weights being trained: the LoRA layers, or the whole UNet for rank FULL."""
    unet = job.accelerator.unwrap_model(job.unet)
    return unet.state_dict() if job.run["rank"] == FULL else get_peft_model_state_dict(unet)


def load_trained_state(job: Job, state: dict[str, torch.Tensor], path: Path) -> None:
    """Put checkpointed trained weights back into the job's UNet."""
    if job.run["rank"] == FULL:
        job.unet.load_state_dict(state)
        return
    result = set_peft_model_state_dict(job.unet, state)
    if result.unexpected_keys:
        raise MeddapError(f"{path}: LoRA keys do not match the model ({result.unexpected_keys[0]})")


def save_checkpoint(checkpoint: Checkpoint, job: Job, progress: Progress) -> None:
    """Save the trained weights, optimizer, scaler, RNG states and the log rows so far."""
    scaler = job.accelerator.scaler
    checkpoint.save(
        {
            "step": progress.step,
            "weights": trained_state(job),
            "optimizer": job.optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rng_state({"noise": progress.generator}),
            "rows": progress.rows,
        }
    )
    log.info("checkpoint at step %d in %s", progress.step, checkpoint.path)


def resume(checkpoint: Checkpoint, job: Job, progress: Progress) -> None:
    """Restore the checkpoint of this same run, if any (one of other settings is discarded)."""
    state = checkpoint.load()
    if state is None:
        return
    load_trained_state(job, state["weights"], checkpoint.path)
    job.optimizer.load_state_dict(state["optimizer"])
    if job.accelerator.scaler and state["scaler"]:
        job.accelerator.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], {"noise": progress.generator})
    progress.step, progress.rows = state["step"], state["rows"]
    log.info("resumed from %s (step %d)", checkpoint.path, progress.step)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The image order of `epoch`, independent of any other random state."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))


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


def _fit(job: Job, progress: Progress, *, every: int, checkpoint: Checkpoint) -> None:
    """Train until the configured number of epochs is done, checkpointing every `every` steps."""
    run, n = job.run, len(job.data)
    per_epoch = math.ceil(n / run["batch_size"])
    total = run["epochs"] * per_epoch
    order_seed = derive_seed(run["seed"], run["fold"], run["rank"], "order")
    unet, optimizer = job.accelerator.prepare(job.unet, job.optimizer)
    desc = f"LoRA fold{run['fold']} r{run['rank']}"
    meter = StepMeter(total, desc, start=progress.step)
    while progress.step < total:
        epoch, within = divmod(progress.step, per_epoch)
        start = within * run["batch_size"]
        index = epoch_order(order_seed, epoch, n)[start : start + run["batch_size"]]
        started = time.perf_counter()
        latents, text = _batch(job, index, progress.generator)
        loss = optimizer_step(
            job.accelerator, unet, optimizer, job.scheduler, latents, text, progress.generator
        )
        progress.step += 1
        lr = optimizer.param_groups[0]["lr"]
        seconds = time.perf_counter() - started
        progress.rows.append(
            {"step": progress.step, "epoch": epoch + 1, "loss": loss, "lr": lr, "seconds": seconds}
        )
        meter.update(loss)
        if progress.step % every == 0 and progress.step < total:
            save_checkpoint(checkpoint, job, progress)
    meter.close()


def save_unet(unet: UNet2DConditionModel, folder: str) -> None:
    """Write a fully fine-tuned UNet as a diffusers folder (`UNet2DConditionModel` loads it)."""
    with atomic_dir(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)


def _write_outputs(job: Job, progress: Progress, weights: str, train_log: str, params: str) -> None:
    """Write the adapter (or UNet folder), the training log and the parameter counts, atomically."""
    unet = job.accelerator.unwrap_model(job.unet)
    (save_unet if job.run["rank"] == FULL else save_adapter)(unet, weights)
    with atomic_path(train_log) as tmp:
        pd.DataFrame(progress.rows).to_csv(tmp, index=False)
    counts = param_counts(unet)
    extra = {"rank": job.run["rank"], "targets": job.run["targets"], "steps": progress.step}
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
    `train_log` (step, epoch, loss, lr, seconds) and `params_json`; the checkpoint lives in
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
    noise_seed = derive_seed(seed, fold, rank, "noise")
    progress = Progress(torch.Generator().manual_seed(noise_seed))
    checkpoint = Checkpoint(Path(weights).parent / "checkpoint.pt", fingerprint(**run))
    resume(checkpoint, job, progress)
    log.info("fold %d rank %s (%s): %d train images", fold, rank, lora.targets, len(job.data))
    _fit(job, progress, every=lora.checkpoint_every, checkpoint=checkpoint)
    _write_outputs(job, progress, weights, train_log, params_json)
    log.info(
        "done: %d steps, final loss %.4f, adapter %s",
        progress.step,
        progress.rows[-1]["loss"],
        weights,
    )
    checkpoint.remove()
