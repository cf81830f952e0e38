"""In-domain image features: the penultimate layer of a classifier the pipeline trained.

The fold's real-only classifier (`results/cls/.../real/model.safetensors`) is reloaded and its
classification head (its `head` in `meddap.cls.registry`) replaced by the identity, so the
network returns the globally pooled features its head reads: 512 for resnet18, resnet34 and
squeezenet1_1 (the pooled output of `features`), 1024 for densenet121. Images are prepared
exactly as for training: uint8 grayscale replicated to 3 channels and normalised with the
ImageNet mean and std.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from meddap.cls.models import normalise
from meddap.cls.registry import CLASSIFIERS


def penultimate_features(
    model: torch.nn.Module, name: str, images: torch.Tensor, batch_size: int = 64
) -> np.ndarray:
    """Pooled features before the head of `model` (architecture `name`): float64 (N, D).

    `images` are uint8 grayscale (N, 1, H, W) as `common.images.load_images` returns them. `model`
    itself is left unchanged; the features are computed in eval mode on its device.
    """
    head = CLASSIFIERS.check(name, "quality.feature_model").head
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected uint8 (N, 1, H, W) images, got {images.dtype} {images.shape}")
    trunk = copy.deepcopy(model).eval()
    trunk.set_submodule(head, torch.nn.Identity())
    device = next(trunk.parameters()).device
    with torch.no_grad():
        batches = [
            trunk(normalise(images[i : i + batch_size]).to(device)).flatten(1).double().cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(batches).numpy()
