"""Planning-time checks of the diffusion models against each other and the config.

Only the models' `config.json` files are read (no weights), so the DAG is built fast. The rule
for every diffusion resolution (`lora.resolution`, `synthesis.sampling.resolution`,
`segmentation.pairs.sampling.resolution`, at which each fold's ControlNet also trains): a
multiple of the base model's VAE factor (4 for the tiny models, 8 for SD v1.x), so that images
map onto whole latents and a ControlNet's conditioning embedding lands on the latent grid. A
ControlNet fits a base model when its encoder has the UNet's in-channels, block widths, layers
per block, block types and cross-attention width, and its conditioning embedding downsamples
by the VAE factor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meddap.common.errors import MeddapError

# the encoder keys a ControlNet shares with the UNet whose residuals it adds to
ENCODER_KEYS = (
    "in_channels",
    "block_out_channels",
    "layers_per_block",
    "down_block_types",
    "cross_attention_dim",
)
RESOLUTION_KEYS = (
    "lora.resolution",
    "synthesis.sampling.resolution",
    "segmentation.pairs.sampling.resolution",
)


def read_config(file: Path) -> dict[str, Any]:
    """A model part's config.json as a dict; stops naming the file when unreadable."""
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise MeddapError(f"{file} is not a readable model config ({err})") from None
    if not isinstance(config, dict):
        raise MeddapError(f"{file} is not a model config (expected a JSON object)")
    return config


def downscale(widths: list[int]) -> int:
    """The factor of an encoder with these block widths: each block after the first halves."""
    return 2 ** (len(widths) - 1)


def vae_factor(base_model: Path) -> int:
    """The downscale factor of a diffusers Stable Diffusion folder's VAE."""
    return downscale(read_config(base_model / "vae" / "config.json")["block_out_channels"])


def check_resolutions(config: dict[str, Any], base_model: Path) -> None:
    """Each configured diffusion resolution is a multiple of the base model's VAE factor."""
    factor = vae_factor(base_model)
    for key in RESOLUTION_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value[part]
        if value % factor:
            raise MeddapError(
                f"config key '{key}': {value} px is not a multiple of {factor}, the VAE factor of "
                f"diffusion.base_model {base_model} (every diffusion resolution must be)"
            )


def check_controlnet(controlnet: Path, base_model: Path, key: str) -> None:
    """Stop unless the ControlNet folder `controlnet` (config key `key`) fits `base_model`."""
    net = read_config(controlnet / "config.json")
    unet = read_config(base_model / "unet" / "config.json")
    for name in ENCODER_KEYS:
        if net.get(name) != unet.get(name):
            raise MeddapError(
                f"config key '{key}': ControlNet {controlnet} has {name} {net.get(name)} but the "
                f"UNet of diffusion.base_model {base_model} has {unet.get(name)}; give a "
                "ControlNet of that base model, or null to start from a copy of its encoder"
            )
    widths = net.get("conditioning_embedding_out_channels") or []
    factor, wanted = downscale(widths) if widths else 0, vae_factor(base_model)
    if factor != wanted:
        raise MeddapError(
            f"config key '{key}': ControlNet {controlnet} downsamples its conditioning image by "
            f"{factor} but the VAE of diffusion.base_model {base_model} by {wanted}; give a "
            "ControlNet of that base model, or null to start from a copy of its encoder"
        )


def check_models(config: dict[str, Any], base_model: str, controlnets: dict[str, str]) -> None:
    """The planning-time checks where the base model is a local folder (a hub id or the tiny
    model the workflow builds is checked by the jobs that load it).

    `controlnets` maps each condition the plan samples with to its pretrained ControlNet's
    location ('' for a fresh one).
    """
    base = Path(base_model)
    if not (base / "model_index.json").is_file():
        return
    check_resolutions(config, base)
    for condition, location in controlnets.items():
        if location and Path(location).is_dir():
            key = f"segmentation.pairs.controlnet.{condition}"
            check_controlnet(Path(location), base, key)
