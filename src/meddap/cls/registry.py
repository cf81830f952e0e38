"""The classifiers config key `classifier.models` may name (light: config checks import it).

Each is a torchvision model of that name (`torchvision.models.get_model`), registered with the
submodule its 3-class head replaces (`head`) and the last convolutional block Grad-CAM explains
(`cam_layer`). A new torchvision classifier is one `register` line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from meddap.common.registry import Registry


@dataclass(frozen=True)
class Torchvision:
    """A torchvision classifier: its head's submodule and its Grad-CAM target layer."""

    head: str
    cam_layer: str


CLASSIFIERS: Registry[Torchvision] = Registry("models", "classifier.models")
CLASSIFIERS.register("densenet121", Torchvision("classifier", "features"))
CLASSIFIERS.register("resnet18", Torchvision("fc", "layer4"))
CLASSIFIERS.register("resnet34", Torchvision("fc", "layer4"))
CLASSIFIERS.register("squeezenet1_1", Torchvision("classifier.1", "features"))
