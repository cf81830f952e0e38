"""Per-fold cache of the frozen parts of Stable Diffusion: VAE latents and text embeddings.

The VAE and text encoder run once per image and prompt; every LoRA rank of the fold reuses
the cache. Latents are stored as the VAE posterior's mean and standard deviation (already
multiplied by the VAE scaling factor), so training still samples a fresh latent at every step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from meddap.common.errors import MeddapError
from meddap.common.settings import LoraCache
from meddap.common.splits import split_rows
from meddap.common.weights import read_weights, write_weights
from meddap.diffusion.latents import CHUNK, load_image, posterior
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.prompts import check_prompt_lengths, prompt

log = logging.getLogger(__name__)
# One metadata entry: safetensors writes several entries in a random order (non-reproducible bytes).


def _encode_images(
    vae: Any, paths: list[str], resolution: int, flip: bool
) -> dict[str, torch.Tensor]:
    """Posterior mean and std of every image (and of its mirror image when `flip`)."""
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(paths), CHUNK):
        pixels = torch.stack([load_image(p, resolution) for p in paths[start : start + CHUNK]])
        views = {"latents": pixels, **({"latents_flip": pixels.flip(-1)} if flip else {})}
        for name, x in views.items():
            mean, std = posterior(vae, x)
            parts.setdefault(name, []).append(mean)
            parts.setdefault(f"{name}_std", []).append(std)
    return {name: torch.cat(chunks).contiguous() for name, chunks in parts.items()}


def encode_fold(
    *,
    manifest: str,
    splits: str,
    cache: str,
    base_model: str,
    fold: int,
    encoding: LoraCache,
) -> None:
    """Encode fold `fold`'s train images and prompts with the frozen VAE and text encoder.

    Reads `lora.resolution`, `lora.flip` (also encode mirror images) and `lora.train_adjective`.
    """
    resolution, flip, adjective = encoding.resolution, encoding.flip, encoding.train_adjective
    rows = split_rows(manifest, splits, fold, "train")
    texts = [prompt(label, adjective) for label in rows["label"]]
    unique = sorted(set(texts))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = load_pipeline(base_model, device=device)
    check_prompt_lengths(pipe.tokenizer, unique, "config key 'lora.train_adjective'")
    if resolution % pipe.vae_scale_factor:
        raise MeddapError(
            f"config key 'lora.resolution': {resolution} is not a multiple of the VAE's "
            f"downsampling factor {pipe.vae_scale_factor}"
        )
    log.info("fold %d: encoding %d train images, %d prompts", fold, len(rows), len(unique))
    tensors = _encode_images(pipe.vae, list(rows["image_path"]), resolution, flip)
    with torch.no_grad():
        embeds = pipe.encode_prompt(unique, device, 1, False)[0]
    tensors["text_embeddings"] = embeds.float().cpu()
    tensors["prompt_index"] = torch.tensor([unique.index(t) for t in texts])
    meta = {
        "ids": list(rows["id"]),
        "prompts": unique,
        "fold": fold,
        "base_model": base_model,
        "resolution": resolution,
        "flip": flip,
        "adjective": adjective,
    }
    write_weights(tensors, meta, cache)


@dataclass
class LatentCache:
    """A fold's cached latents and text embeddings (see `encode_fold`)."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def ids(self) -> list[str]:
        """Image ids, in the order of the latent rows."""
        return self.meta["ids"]

    def __len__(self) -> int:
        return len(self.ids)

    def latents(
        self, index: torch.Tensor, flipped: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Sample VAE latents of images `index`, mirrored where `flipped` (needs a flip cache)."""
        t, pick = self.tensors, flipped[:, None, None, None]
        mean, std = t["latents"][index], t["latents_std"][index]
        if flipped.any():
            mean = torch.where(pick, t["latents_flip"][index], mean)
            std = torch.where(pick, t["latents_flip_std"][index], std)
        return mean + std * torch.randn(mean.shape, generator=generator)

    def text(self, index: torch.Tensor) -> torch.Tensor:
        """Text embeddings of the prompts of images `index`."""
        return self.tensors["text_embeddings"][self.tensors["prompt_index"][index]]


def load_cache(path: str) -> LatentCache:
    """Read a cache written by `encode_fold`."""
    tensors, meta = read_weights(path, "LoRA latent cache")
    if "ids" not in meta or "latents" not in tensors:
        raise MeddapError(f"{path}: not a LoRA latent cache written by encode_fold")
    return LatentCache(tensors, meta)
