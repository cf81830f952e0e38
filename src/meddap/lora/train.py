"""USLoRA training: LoRA on the UNet cross-attention of Stable Diffusion, one fold and rank.

Frozen VAE latents and text embeddings come from the fold's cache (`lora_cache`). Training
checkpoints every N steps and resumes from the last checkpoint; on CPU a resumed run ends with
exactly the adapter of an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
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
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from meddap.common.atomic import atomic_dir, atomic_path, write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.seeds import derive_seed
from meddap.diffusion.pipeline import load_pipeline
from meddap.lora.cache import LatentCache, load_cache, train_ids
from meddap.lora.params import add_lora, param_counts

log = logging.getLogger(__name__)
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(mixed_precision: str) -> str:
    """'auto' is fp16 on CUDA and 'no' on CPU; fp16 and bf16 need a GPU."""
    cuda = torch.cuda.is_available()
    if mixed_precision == "auto":
        return "fp16" if cuda else "no"
    if mixed_precision not in WEIGHT_DTYPES:
        raise MeddapError(
            f"config key 'lora.mixed_precision': {mixed_precision!r} is not auto, no, fp16 or bf16"
        )
    if mixed_precision != "no" and not cuda:
        raise MeddapError(f"config key 'lora.mixed_precision': {mixed_precision} needs a CUDA GPU")
    return mixed_precision


def check_train_only(data: LatentCache, cache: str, splits: str, fold: int) -> None:
    """Refuse a cache that holds any image outside fold `fold`'s train split."""
    if data.meta.get("fold") != fold:
        raise MeddapError(f"{cache}: the cache is for fold {data.meta.get('fold')}, not {fold}")
    leaked = sorted(set(data.ids) - train_ids(splits, fold))
    if leaked:
        raise MeddapError(
            f"{cache}: {len(leaked)} image(s) are not in fold {fold}'s train split of {splits} "
            f"(first: {leaked[0]!r}); LoRA training must never see validation or test images"
        )


def adapt_unet(
    unet: UNet2DConditionModel, *, rank: int, targets: str, seed: int, checkpointing: bool
) -> None:
    """Add a seeded fp32 LoRA adapter to a frozen `unet` and put it in training mode."""
    torch.manual_seed(seed)
    add_lora(unet, rank, targets)
    cast_training_params(unet, torch.float32)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()


def training_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Noise-prediction MSE at random timesteps (eq. 1 of the paper)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    steps = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator
    ).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, steps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, steps)
    else:
        target = noise
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


def _rng_tensors(progress: Progress) -> dict[str, torch.Tensor]:
    tensors = {"rng/generator": progress.generator.get_state(), "rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor], progress: Progress) -> None:
    progress.generator.set_state(tensors["rng/generator"])
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(folder: Path, job: Job, progress: Progress) -> None:
    """Write LoRA weights, optimizer and RNG states (safetensors) and the rest (json)."""
    opt = job.optimizer.state_dict()
    tensors = {f"lora/{k}": v for k, v in get_peft_model_state_dict(job.unet).items()}
    tensors |= {f"optimizer/{i}/{k}": v for i, s in opt["state"].items() for k, v in s.items()}
    tensors |= _rng_tensors(progress)
    scaler = job.accelerator.scaler
    state = {
        "run": job.run,
        "step": progress.step,
        "param_groups": opt["param_groups"],
        "scaler": scaler.state_dict() if scaler else None,
        "rows": progress.rows,
    }
    with atomic_dir(folder / f"step-{progress.step:08d}") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    for old in folder.glob("step-*"):
        if old.name != f"step-{progress.step:08d}":
            shutil.rmtree(old)
    log.info("checkpoint at step %d in %s", progress.step, folder)


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)
    for key, value in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/")
            state[int(index)][name] = value
    for group in groups:
        group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": dict(state), "param_groups": groups})


def resume(folder: Path, job: Job, progress: Progress) -> None:
    """Restore the latest checkpoint of this same run, if any; drop checkpoints of other runs."""
    latest = max(folder.glob("step-*"), default=None)
    if latest is None:
        return
    state = json.loads((latest / "state.json").read_text())
    if state["run"] != job.run:
        log.warning("discarding checkpoints in %s: they belong to other settings", folder)
        shutil.rmtree(folder)
        return
    tensors = load_file(latest / "state.safetensors")
    lora = {k.removeprefix("lora/"): v for k, v in tensors.items() if k.startswith("lora/")}
    result = set_peft_model_state_dict(job.unet, lora)
    if result.unexpected_keys:
        raise MeddapError(
            f"{latest}: LoRA keys do not match the model ({result.unexpected_keys[0]})"
        )
    _load_optimizer(job.optimizer, tensors, state["param_groups"])
    if job.accelerator.scaler and state["scaler"]:
        job.accelerator.scaler.load_state_dict(state["scaler"])
    _restore_rng(tensors, progress)
    progress.step, progress.rows = state["step"], state["rows"]
    log.info("resumed from %s (step %d)", latest, progress.step)


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The image order of `epoch`, independent of any other random state."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))


def save_adapter(unet: UNet2DConditionModel, weights: str) -> None:
    """Write the adapter in diffusers format (loadable with `pipe.load_lora_weights`).

    No adapter metadata is stored: safetensors would write its entries in a random order, and
    diffusers' default for a checkpoint without alphas (alpha = rank) is the training setting.
    """
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
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
    precision = resolve_precision(run["mixed_precision"])
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


def _fit(job: Job, progress: Progress, *, every: int, checkpoints: Path) -> None:
    """Train until the configured number of epochs is done, checkpointing every `every` steps."""
    run, n = job.run, len(job.data)
    per_epoch = math.ceil(n / run["batch_size"])
    total = run["epochs"] * per_epoch
    order_seed = derive_seed(run["seed"], run["fold"], run["rank"], "order")
    unet, optimizer = job.accelerator.prepare(job.unet, job.optimizer)
    desc = f"LoRA fold{run['fold']} r{run['rank']}"
    bar = tqdm(total=total, initial=progress.step, desc=desc, unit="step")
    while progress.step < total:
        epoch, within = divmod(progress.step, per_epoch)
        start = within * run["batch_size"]
        index = _epoch_order(order_seed, epoch, n)[start : start + run["batch_size"]]
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
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}")
        if progress.step % every == 0 and progress.step < total:
            save_checkpoint(checkpoints, job, progress)
    bar.close()


def _write_outputs(job: Job, progress: Progress, weights: str, train_log: str, params: str) -> None:
    """Write the adapter, the training log and the parameter counts, each atomically."""
    unet = job.accelerator.unwrap_model(job.unet)
    save_adapter(unet, weights)
    with atomic_path(train_log) as tmp:
        pd.DataFrame(progress.rows).to_csv(tmp, index=False)
    counts = param_counts(unet)
    extra = {"rank": job.run["rank"], "targets": job.run["targets"], "steps": progress.step}
    write_json({**counts, **extra, "images": len(job.data)}, params)


def train_lora(
    *,
    cache: str,
    splits: str,
    base_model: str,
    weights: str,
    train_log: str,
    params_json: str,
    fold: int,
    rank: int,
    targets: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    checkpoint_every: int,
    mixed_precision: str,
    gradient_checkpointing: bool,
    seed: int,
) -> None:
    """Train the USLoRA adapter of fold `fold` and rank `rank` on the fold's cached train split.

    Writes the diffusers-format adapter `weights`, `train_log` (step, epoch, loss, lr, seconds)
    and `params_json`; checkpoints live in `checkpoints/` beside `weights` until success.
    """
    _check_settings(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        checkpoint_every=checkpoint_every,
    )
    run = {
        "cache_sha256": file_sha256(cache),
        "base_model": base_model,
        "fold": fold,
        "rank": rank,
        "targets": targets,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "mixed_precision": mixed_precision,
        "gradient_checkpointing": gradient_checkpointing,
        "seed": seed,
    }
    job = _setup(cache, splits, run)
    noise_seed = derive_seed(seed, fold, rank, "noise")
    progress = Progress(torch.Generator().manual_seed(noise_seed))
    checkpoints = Path(weights).parent / "checkpoints"
    resume(checkpoints, job, progress)
    log.info("fold %d rank %d (%s): %d train images", fold, rank, targets, len(job.data))
    _fit(job, progress, every=checkpoint_every, checkpoints=checkpoints)
    _write_outputs(job, progress, weights, train_log, params_json)
    log.info(
        "done: %d steps, final loss %.4f, adapter %s",
        progress.step,
        progress.rows[-1]["loss"],
        weights,
    )
    shutil.rmtree(checkpoints, ignore_errors=True)
