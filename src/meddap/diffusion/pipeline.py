"""Loading a Stable Diffusion pipeline: a hub id or a local diffusers folder (the tiny one too).

A local folder with a build record (`BUILD_RECORD`, written by `meddap pretrain-base`) is
verified first: every file must have the sha256 the record lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256, tree_files

BUILD_RECORD = "meddap_build.json"


def verify_build(folder: str | Path) -> None:
    """Stop naming the first file of `folder` that its build record does not vouch for."""
    folder = Path(folder)
    record = folder / BUILD_RECORD
    if not record.is_file():
        return
    try:
        build = json.loads(record.read_text())
        recorded, command = build["files"], build["command"]
    except (ValueError, KeyError, TypeError) as err:
        raise MeddapError(f"{record} is not a readable build record ({err!r})") from err
    present = {f.relative_to(folder).as_posix() for f in tree_files(folder)} - {BUILD_RECORD}
    for name in sorted(present | set(recorded)):
        if name not in recorded:
            problem = "is not listed in"
        elif name not in present:
            problem = "is missing but listed in"
        elif file_sha256(folder / name) != recorded[name]:
            problem = "does not have the sha256 recorded in"
        else:
            continue
        raise MeddapError(
            f"model file {folder / name} {problem} {BUILD_RECORD}; restore the folder "
            f"or rebuild it with `{command}`"
        )


def load_pipeline(
    base_model: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline from a hub id or a local diffusers folder."""
    path = Path(base_model)
    if path.exists() and not (path / "model_index.json").is_file():
        raise MeddapError(
            f"diffusion.base_model {base_model}: expected a diffusers folder with model_index.json"
        )
    if path.is_dir():
        verify_build(path)
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
