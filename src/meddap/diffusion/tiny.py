"""The embedded default diffusion model: a tiny, randomly initialised Stable Diffusion.

It is built offline from configs, saved with `save_pretrained` and loaded by
`meddap.diffusion.pipeline.load_pipeline`, the call that loads `CompVis/stable-diffusion-v1-4`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from meddap.common.atomic import atomic_dir
from meddap.common.settings import Diffusion
from meddap.diffusion.prompts import ADJECTIVES, LABEL_WORDS, TEMPLATE

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END = "</w>"
MAX_LENGTH = 77


def prompt_words() -> list[str]:
    """Every word of every MEDDAP prompt, as CLIP's pre-tokenizer splits it (sorted)."""
    text = " ".join([TEMPLATE.format(tumor=" ".join(LABEL_WORDS.values())), *ADJECTIVES[1:]])
    return sorted(set(text.replace("-", " ").split()))


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out: list[str] = []
    for s in symbols:
        if out and (out[-1], s) == pair:
            out[-1] += s
        else:
            out.append(s)
    return out


def bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """Train byte-pair merges until every word is one token (most frequent pair first)."""
    segments = [[*w[:-1], w[-1] + END] for w in words]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(p for seg in segments for p in zip(seg, seg[1:], strict=False))
        if not counts:
            return merges
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        segments = [_merge(seg, pair) for seg in segments]


def write_tokenizer(folder: str | Path, merges: list[tuple[str, str]] | None = None) -> None:
    """Write a CLIP tokenizer (vocab.json, merges.txt, config) of `merges`, by default ones
    covering the prompt words (CLIP's own merges give CLIP's 49,408-token vocabulary).

    The vocabulary is CLIP's layout: the 256 byte-level characters, the same with the
    end-of-word marker, one token per merge, then the two special tokens.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    merges = bpe_merges(prompt_words()) if merges is None else merges
    tokens = [*chars, *(c + END for c in chars), *(a + b for a, b in merges), BOS, EOS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}) + "\n")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "unk_token": EOS,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        sample_size=64,
    )


def text_encoder(
    tokenizer: CLIPTokenizer, *, hidden_size: int = 32, intermediate_size: int = 37
) -> CLIPTextModel:
    """A freshly initialised 2-layer CLIP text encoder over `tokenizer`'s vocabulary."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def training_scheduler() -> DDPMScheduler:
    """The SD v1.x noise schedule, as a DDPM scheduler for training."""
    return DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        clip_sample=False,
        steps_offset=1,
    )


def save_sd(
    folder: Path,
    *,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    unet: UNet2DConditionModel,
) -> None:
    """Save the parts as a diffusers Stable Diffusion folder (SD v1 schedule, safetensors)."""
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=training_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def build_tiny_sd(*, model: str, seed: int) -> None:
    """Build the tiny Stable Diffusion (64x64 images, 32x32 latents) into folder `model`."""
    with atomic_dir(model) as tmp:
        write_tokenizer(tmp / "tokenizer")
        tokenizer = CLIPTokenizer.from_pretrained(tmp / "tokenizer")
        torch.manual_seed(seed)
        vae, encoder, unet = _vae(), text_encoder(tokenizer), _unet()
        save_sd(tmp, vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet)


def build_tiny_sd_job(*, model: str, diffusion: Diffusion) -> None:
    """Job: the tiny Stable Diffusion of seed `diffusion.tiny_seed` into folder `model`."""
    build_tiny_sd(model=model, seed=diffusion.tiny_seed)
