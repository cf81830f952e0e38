"""Pretraining the embedded generator: a small Stable Diffusion learns the phantom corpus.

The analogue of SD's pretraining on LAION, offline. Phase 1 trains the VAE (reconstruction MSE
plus a small KL term) and sets its latent scaling factor to 1 / std of the corpus latents, as
SD v1 did; phase 2 trains the UNet and the CLIP text encoder jointly on DDPM noise prediction
with the SD v1 schedule (`tiny.training_scheduler`, `training.unet_loss`) and offset noise, so
that prompts can set an image's brightness. Both phases use AdamW with warmup and cosine decay,
random horizontal flips and seeded batch orders (`training.EpochOrder`, full batches). The state
is checkpointed every `checkpoint_every` steps (`training.StepLoop`); on CPU a resumed run ends
with the bytes of an uninterrupted one. The folder (fp16 safetensors) is written atomically with
`BUILD_RECORD`: the command, the config, the code version, the final losses and the sha256 of
every other file.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from transformers import CLIPTextModel, CLIPTokenizer

from meddap.common.atomic import atomic_dir, atomic_path, write_json
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.hashing import tree_hashes
from meddap.common.runtime import deterministic
from meddap.common.seeds import derive_seed
from meddap.diffusion.corpus import (
    ADJECTIVE_RULES,
    QUANTILE,
    SHARDS,
    Corpus,
    draw_captions,
    generate_corpus,
    load_corpus,
)
from meddap.diffusion.pipeline import BUILD_RECORD
from meddap.diffusion.pretrain_config import DEFAULT_CHECKPOINTS, DEFAULT_OUTPUT, PretrainConfig
from meddap.diffusion.tiny import save_sd, text_encoder, training_scheduler, write_tokenizer
from meddap.diffusion.training import EpochOrder, Stateful, StepLoop, optimizer_update, unet_loss

log = logging.getLogger(__name__)
LOSS_WINDOW = 50  # the record's final losses: means over the last steps of each phase


def _vae(config: PretrainConfig) -> AutoencoderKL:
    blocks = len(config.vae_channels)
    return AutoencoderKL(
        block_out_channels=config.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=config.vae_channels[0],
        sample_size=config.image_size,
        mid_block_add_attention=False,
    )


def _unet(config: PretrainConfig) -> UNet2DConditionModel:
    blocks = len(config.unet_channels)
    return UNet2DConditionModel(
        sample_size=config.image_size // 2 ** (len(config.vae_channels) - 1),
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) * (blocks - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (blocks - 1),
        cross_attention_dim=config.text_width,
        attention_head_dim=config.unet_heads,  # diffusers' SD name for the number of heads
        norm_num_groups=min(32, config.unet_channels[0]),
    )


@dataclass
class Models:
    """The parts being trained, their optimizers and learning-rate schedules."""

    vae: AutoencoderKL
    text: CLIPTextModel
    unet: UNet2DConditionModel
    tokenizer: CLIPTokenizer
    scheduler: DDPMScheduler
    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, torch.optim.lr_scheduler.LRScheduler]


def _models(config: PretrainConfig, tokenizer: CLIPTokenizer) -> Models:
    """Seeded fresh models with AdamW and warmup-cosine schedules for both phases."""
    torch.manual_seed(config.seed)
    vae = _vae(config)
    text = text_encoder(
        tokenizer, hidden_size=config.text_width, intermediate_size=4 * config.text_width
    )
    unet = _unet(config)
    optimizers = {
        "vae": torch.optim.AdamW(vae.parameters(), lr=config.vae_learning_rate),
        "unet": torch.optim.AdamW(
            [*unet.parameters(), *text.parameters()], lr=config.unet_learning_rate
        ),
    }
    steps = {"vae": config.vae_steps, "unet": config.unet_steps}
    schedules = {
        name: get_cosine_schedule_with_warmup(
            opt, min(config.warmup_steps, steps[name] // 10), steps[name]
        )
        for name, opt in optimizers.items()
    }
    for model in (vae, text, unet):
        model.train()
    return Models(vae, text, unet, tokenizer, training_scheduler(), optimizers, schedules)


def _mirror(x: torch.Tensor, mirrored: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """`x` with its rows replaced by `mirrored`'s where `flipped`."""
    return torch.where(flipped[:, None, None, None], mirrored, x)


def _vae_step(
    config: PretrainConfig, models: Models, corpus: Corpus, index: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Reconstruction MSE plus `kl_weight` times the posterior KL, on flipped random crops."""
    images = corpus.images[index]
    images = _mirror(images, images.flip(-1), torch.rand(len(index), generator=g) < 0.5)
    side, crop = images.shape[-1], config.vae_crop
    corners = torch.randint(0, side - crop + 1, (len(index), 2), generator=g).tolist()
    x = torch.stack(
        [im[:, r : r + crop, c : c + crop] for im, (r, c) in zip(images, corners, strict=True)]
    )
    posterior = models.vae.encode(x).latent_dist
    recon = models.vae.decode(posterior.sample(generator=g)).sample
    return F.mse_loss(recon, x) + config.kl_weight * posterior.kl().mean()


@torch.no_grad()
def _encode_corpus(vae: AutoencoderKL, corpus: Corpus) -> dict[str, torch.Tensor]:
    """Posterior mean and std of every image and its mirror; sets the VAE's scaling factor."""
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(corpus), 64):
        x = corpus.images[start : start + 64]
        for name, view in (("plain", x), ("flip", x.flip(-1))):
            dist = vae.encode(view).latent_dist
            parts.setdefault(f"{name}_mean", []).append(dist.mean)
            parts.setdefault(f"{name}_std", []).append(dist.std)
    latents = {name: torch.cat(chunks) for name, chunks in parts.items()}
    vae.register_to_config(scaling_factor=float(f"{1 / latents['plain_mean'].std().item():.6g}"))
    return latents


def _unet_step(
    config: PretrainConfig,
    models: Models,
    corpus: Corpus,
    latents: dict[str, torch.Tensor],
    index: torch.Tensor,
    g: torch.Generator,
) -> torch.Tensor:
    """Noise-prediction MSE on sampled, scaled latents with freshly drawn captions."""
    flipped = torch.rand(len(index), generator=g) < 0.5
    mean = _mirror(latents["plain_mean"][index], latents["flip_mean"][index], flipped)
    std = _mirror(latents["plain_std"][index], latents["flip_std"][index], flipped)
    z = (mean + std * torch.randn(mean.shape, generator=g)) * models.vae.config.scaling_factor
    captions = draw_captions(
        corpus,
        index,
        g,
        adjective_share=config.adjective_share,
        uncond_share=config.uncond_share,
    )
    ids = models.tokenizer(
        captions,
        padding="max_length",
        max_length=models.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    hidden = models.text(ids)[0]
    return unet_loss(models.unet, models.scheduler, z, hidden, g, config.noise_offset)


def _parts(models: Models) -> dict[str, Stateful]:
    """What the checkpoint saves besides RNGs and rows: weights, optimizers, schedules."""
    optimizers = {f"optimizer/{k}": v for k, v in models.optimizers.items()}
    schedules = {f"schedule/{k}": v for k, v in models.schedules.items()}
    return {"vae": models.vae, "text": models.text, "unet": models.unet, **optimizers, **schedules}


@dataclass
class _Steps:
    """One optimizer step of either phase: VAE steps first, then UNet (and text encoder) steps."""

    config: PretrainConfig
    models: Models
    corpus: Corpus
    generator: torch.Generator
    latents: dict[str, torch.Tensor] = field(default_factory=dict)  # the corpus', in phase 2

    def __call__(self, step: int) -> dict[str, Any]:
        config, models, corpus = self.config, self.models, self.corpus
        phase = "vae" if step < config.vae_steps else "unet"
        order = EpochOrder(len(corpus), config.batch_size, config.seed, (phase,), full=True)
        index = order.batch(step - (0 if phase == "vae" else config.vae_steps))
        if phase == "vae":
            loss = _vae_step(config, models, corpus, index, self.generator)
        else:
            self.latents = self.latents or _encode_corpus(models.vae, corpus)
            loss = _unet_step(config, models, corpus, self.latents, index, self.generator)
        value = optimizer_update(loss, models.optimizers[phase])
        models.schedules[phase].step()
        return {"phase": phase, "loss": value}


def final_losses(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean loss of the last LOSS_WINDOW steps of each phase."""
    losses = {}
    for phase in ("vae", "unet"):
        tail = [r["loss"] for r in rows if r["phase"] == phase][-LOSS_WINDOW:]
        losses[phase] = sum(tail) / len(tail)
    return losses


def _write_model(output: str | Path, models: Models, record: dict[str, Any]) -> None:
    """The diffusers folder (fp16 safetensors) and its build record, atomically."""
    with atomic_dir(output) as tmp:
        write_tokenizer(tmp / "tokenizer")
        save_sd(
            tmp,
            vae=models.vae.half(),
            text_encoder=models.text.half(),
            tokenizer=CLIPTokenizer.from_pretrained(tmp / "tokenizer"),
            unet=models.unet.half(),
        )
        write_json({**record, "files": tree_hashes(tmp)}, tmp / BUILD_RECORD)


def _write_log(rows: list[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "phase", "loss"])
        writer.writeheader()
        writer.writerows(rows)


def _pretrain(
    config: PretrainConfig, checkpoint: Checkpoint
) -> tuple[Models, list[dict[str, Any]], Corpus]:
    """Generate the corpus, set up (or resume) the models and train both phases."""
    with tempfile.TemporaryDirectory() as tmp, deterministic(torch.device("cpu")):
        folders = generate_corpus(tmp, patients=config.patients, render_size=config.render_size)
        corpus = load_corpus(folders, config.image_size)
        if len(corpus) < config.batch_size:
            raise MeddapError(
                f"the corpus has {len(corpus)} images, fewer than batch_size {config.batch_size}"
            )
        write_tokenizer(Path(tmp) / "tokenizer")
        models = _models(config, CLIPTokenizer.from_pretrained(Path(tmp) / "tokenizer"))
        noise = torch.Generator().manual_seed(derive_seed(config.seed, "noise"))
        total = config.vae_steps + config.unet_steps
        loop = StepLoop(total, noise, _parts(models), checkpoint, config.checkpoint_every)
        log.info("pretraining on %d corpus images", len(corpus))
        rows = loop.run(_Steps(config, models, corpus, noise), "pretrain-base", shown=("phase",))
    return models, rows, corpus


def pretrain_base(
    *,
    output: str | Path = DEFAULT_OUTPUT,
    config: PretrainConfig = PretrainConfig(),  # noqa: B008 (frozen)
    checkpoint_dir: str | Path = DEFAULT_CHECKPOINTS,
    resume: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Pretrain the generator on the phantom corpus and write it to folder `output`.

    Checkpoints go to `checkpoint_dir`/checkpoint.pt (continued when `resume`, else discarded),
    the per-step log to `checkpoint_dir`/train_log.csv. Returns the final losses, the number of
    corpus images and the wall time.
    """
    from meddap.run.provenance import code_version, package_versions

    config.check()
    started, code, threads = time.perf_counter(), code_version(), torch.get_num_threads()
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint = Checkpoint(checkpoint_dir / "checkpoint.pt", fingerprint(**asdict(config)))
    if not resume:
        checkpoint.remove()
    torch.set_num_threads(config.threads)
    try:
        models, rows, corpus = _pretrain(config, checkpoint)
    finally:
        torch.set_num_threads(threads)
    losses = final_losses(rows)
    record = {
        "command": command,
        "config": asdict(config),
        "corpus": {
            "shards": [asdict(shard) for shard in SHARDS],
            "images": len(corpus),
            "classes": dict(sorted(Counter(corpus.labels).items())),
            "adjective_rules": ADJECTIVE_RULES,
            "adjective_quantile": QUANTILE,
        },
        "code": code,
        "packages": package_versions(),
        "final_losses": losses,
    }
    _write_model(output, models, record)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    _write_log(rows, checkpoint_dir / "train_log.csv")
    checkpoint.remove()
    seconds = time.perf_counter() - started
    return {"losses": losses, "images": len(corpus), "seconds": seconds}
