"""Stable Diffusion's input side: images as the VAE reads them, and their scaled posteriors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from meddap.common.images import open_gray

CHUNK = 8  # images per VAE call


def load_image(path: str, resolution: int) -> torch.Tensor:
    """A (3, R, R) tensor in [-1, 1]: grayscale, centre-cropped to a square, replicated to RGB."""
    with open_gray(path) as im:
        gray = ImageOps.fit(im, (resolution, resolution), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 127.5 - 1.0)
    return pixels.expand(3, -1, -1)


@torch.no_grad()
def posterior(vae: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled VAE posterior mean and std of images (N, 3, R, R) in [-1, 1], CHUNK at a time."""
    means, stds = [], []
    for start in range(0, len(pixels), CHUNK):
        dist = vae.encode(pixels[start : start + CHUNK].to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    scale = vae.config.scaling_factor
    return (torch.cat(means) * scale).contiguous(), (torch.cat(stds) * scale).contiguous()
