"""The classifier zoo (`meddap.cls.registry`): torchvision CNNs with a 3-class head, their
input preparation and I/O.

Images enter as uint8 grayscale (N, 1, S, S), are replicated to 3 channels and normalised with
the ImageNet mean and std (`normalise`), in training, prediction, features and Grad-CAM alike.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torchvision.models import get_model, get_model_weights
from torchvision.transforms import v2

from meddap.cls.registry import CLASSIFIERS
from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagenet_checkpoint(name: str) -> Path:
    """Where torchvision's IMAGENET1K_V1 weights of model `name` lie in the torch hub cache."""
    url = get_model_weights(name).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def build_model(name: str, num_classes: int, pretrained: str) -> torch.nn.Module:
    """A torchvision model with a `num_classes` head, random or from cached ImageNet weights,
    its weights in channels-last memory order: on a CPU, oneDNN's convolutions then run in
    that order (a SqueezeNet update at 64 px: about 27 % less time, a ResNet-18 at 128 px about
    15 %; `tests/benchmarks/bench_threads.py`), with the same arithmetic."""
    return _torchvision_model(name, num_classes, pretrained).to(memory_format=torch.channels_last)


def _torchvision_model(name: str, num_classes: int, pretrained: str) -> torch.nn.Module:
    head_name = CLASSIFIERS.get(name, "classifier").head
    if pretrained == "none":
        return get_model(name, weights=None, num_classes=num_classes)
    if pretrained != "imagenet":
        raise MeddapError(
            f"config key classifier.pretrained: {pretrained!r} is not none or imagenet"
        )
    path = imagenet_checkpoint(name)
    if not path.is_file():
        raise MeddapError(
            f"config key classifier.pretrained is imagenet but {path} is missing (copy the "
            "torchvision weights there; nothing is downloaded) or set it to none"
        )
    model = get_model(name, weights=get_model_weights(name).IMAGENET1K_V1)
    head = get_model(name, weights=None, num_classes=num_classes).get_submodule(head_name)
    model.set_submodule(head_name, head)
    return model


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


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1, H, W) -> float (B, 3, H, W), ImageNet-normalised."""
    return v2.functional.normalize(pixels.float().div(255).expand(-1, 3, -1, -1), MEAN, STD)


def predict(model: torch.nn.Module, pixels: torch.Tensor, batch_size: int) -> np.ndarray:
    """Softmax probabilities (N, classes) as float64, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        batches = [
            model(normalise(pixels[i : i + batch_size]).to(device)).double().softmax(1).cpu()
            for i in range(0, len(pixels), batch_size)
        ]
    return torch.cat(batches).numpy()
