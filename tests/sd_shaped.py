"""A random, narrow Stable Diffusion with SD v1.x's structure, built in seconds (tests only).

UNet: 4 down blocks with cross-attention at the first 3 (as SD v1.x), 4 latent channels; VAE:
4 blocks (factor 8), 4 latent channels, scaling 0.18215; text encoder: CLIP with 77 positions
and CLIP's 49,408-row token embedding. The tokenizer is transformers' `CLIPTokenizer` of the
project's prompt BPE (`meddap.diffusion.tiny.write_tokenizer`: CLIP's padding and truncation to
77 positions, not its vocabulary), or with `clip_vocabulary` CLIP's own 49,408 tokens, built
from the BPE merges that `open_clip_torch` (the `test` extra) ships. The workflow test keeps the
stand-in: loading CLIP's 3.5 MB tokenizer in every job added ~18% CPU time to it.
Widths are narrow (32-64 channels) so that the whole workflow runs on 2 CPU cores in minutes;
`FULL` gives SD v1.x's own widths (UNet 859.5M parameters, ViT-L/14-sized text encoder) for
the GPU benchmarks.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from meddap.diffusion.tiny import training_scheduler, write_tokenizer

CLIP_VOCAB = 49408
CLIP_MERGES = CLIP_VOCAB - 2 * 256 - 2  # bytes, bytes with '</w>', start and end tokens


def clip_merges() -> list[tuple[str, str]]:
    """CLIP's BPE merges from open_clip's packaged `bpe_simple_vocab_16e6.txt.gz`, read as
    open_clip's `SimpleTokenizer` reads them."""
    with gzip.open(
        files("open_clip") / "bpe_simple_vocab_16e6.txt.gz", "rt", encoding="utf-8"
    ) as f:
        lines = f.read().split("\n")[1 : 1 + CLIP_MERGES]
    return [tuple(line.split()) for line in lines]


def write_clip_tokenizer(folder: Path, clip_vocabulary: bool = True) -> CLIPTokenizer:
    """Write CLIP's tokenizer (or without `clip_vocabulary` the stand-in) in `folder`; load it."""
    write_tokenizer(folder, clip_merges() if clip_vocabulary else None)
    return CLIPTokenizer.from_pretrained(folder)


@dataclass(frozen=True)
class Widths:
    """Channel widths of the three parts (the layout is SD v1.x's whatever the widths)."""

    unet: tuple[int, ...] = (32, 32, 64, 64)
    unet_layers: int = 1  # per block; SD v1.x has 2 (FULL), 1 halves the CPU test's UNet
    vae: tuple[int, ...] = (32, 32, 64, 64)
    vae_layers: int = 1
    text: int = 32
    text_layers: int = 2
    text_heads: int = 4


NARROW = Widths()
FULL = Widths((320, 640, 1280, 1280), 2, (128, 256, 512, 512), 2, 768, 12, 12)


def sd_unet(widths: Widths = NARROW) -> UNet2DConditionModel:
    """SD v1.x's UNet layout (native 64x64 latents, 512 px)."""
    return UNet2DConditionModel(
        sample_size=64,
        block_out_channels=widths.unet,
        layers_per_block=widths.unet_layers,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=widths.text,
        attention_head_dim=8,
    )


def sd_vae(widths: Widths = NARROW) -> AutoencoderKL:
    """SD v1.x's VAE layout: factor 8, 4 latent channels, scaling 0.18215."""
    return AutoencoderKL(
        block_out_channels=widths.vae,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=widths.vae_layers,
        sample_size=512,
        scaling_factor=0.18215,
    )


def sd_text_encoder(tokenizer: CLIPTokenizer, widths: Widths = NARROW) -> CLIPTextModel:
    """A CLIP text encoder with 77 positions and CLIP's vocabulary size."""
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB,
        hidden_size=widths.text,
        intermediate_size=4 * widths.text,
        num_hidden_layers=widths.text_layers,
        num_attention_heads=widths.text_heads,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def sd_pipeline(
    folder: Path, widths: Widths = NARROW, clip_vocabulary: bool = False
) -> StableDiffusionPipeline:
    """The random model in memory (seed 0); its tokenizer is written into `folder`."""
    import torch

    tokenizer = write_clip_tokenizer(folder / "tokenizer", clip_vocabulary)
    torch.manual_seed(0)
    return StableDiffusionPipeline(
        vae=sd_vae(widths),
        text_encoder=sd_text_encoder(tokenizer, widths),
        tokenizer=tokenizer,
        unet=sd_unet(widths),
        scheduler=training_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sd_shaped(folder: Path, clip_vocabulary: bool = False) -> Path:
    """Write the narrow model as a diffusers folder (seed 0) and return it."""
    pipe = sd_pipeline(folder, clip_vocabulary=clip_vocabulary)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
