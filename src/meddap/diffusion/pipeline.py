"""Loading a Stable Diffusion pipeline: a hub id or a local diffusers folder (the tiny one too)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from meddap.common.errors import MeddapError


def load_pipeline(
    base_model: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline from a hub id or a local diffusers folder."""
    path = Path(base_model)
    if path.exists() and not (path / "model_index.json").is_file():
        raise MeddapError(
            f"diffusion.base_model {base_model}: expected a diffusers folder with model_index.json"
        )
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            base_model, dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as err:
        raise MeddapError(
            f"diffusion.base_model {base_model!r} is neither a local diffusers folder "
            f"nor a hub id that can be downloaded ({err})"
        ) from err
    return pipe.to(device)
