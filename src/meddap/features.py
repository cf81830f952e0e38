"""In-domain image features: the penultimate layer of a classifier the pipeline trained.

The fold's real-only classifier (`results/cls/.../real/model.safetensors`) is reloaded and its
classification head (`classify.HEADS`) replaced by the identity, so the network returns the
globally pooled features its head reads: 512 for resnet34 and squeezenet1_1 (the pooled output
of `features`), 1024 for densenet121. Images are prepared exactly as for training: uint8
grayscale replicated to 3 channels and normalised with the ImageNet mean and std.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from meddap.classify import CLASSES, HEADS, build_model, normalise
from meddap.errors import MeddapError


def load_classifier(name: str, weights: str) -> torch.nn.Module:
    """The classifier `name` (3 classes) with the weights of the safetensors file `weights`."""
    model = build_model(name, len(CLASSES), "none")
    try:
        state = load_file(weights)
    except (OSError, SafetensorError) as err:
        raise MeddapError(f"classifier weights {weights} could not be read ({err})") from err
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise MeddapError(f"classifier weights {weights} do not fit model {name}") from err
    return model.eval()


def penultimate_features(
    model: torch.nn.Module, name: str, images: torch.Tensor, batch_size: int = 64
) -> np.ndarray:
    """Pooled features before the head of `model` (architecture `name`): float64 (N, D).

    `images` are uint8 grayscale (N, 1, H, W) as `classify.load_images` returns them. `model`
    itself is left unchanged; the features are computed in eval mode on its device.
    """
    if name not in HEADS:
        raise MeddapError(f"config key quality.feature_model: {name!r} is not one of {list(HEADS)}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected uint8 (N, 1, H, W) images, got {images.dtype} {images.shape}")
    trunk = copy.deepcopy(model).eval()
    trunk.set_submodule(HEADS[name], torch.nn.Identity())
    device = next(trunk.parameters()).device
    with torch.no_grad():
        batches = [
            trunk(normalise(images[i : i + batch_size]).to(device)).flatten(1).double().cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(batches).numpy()
