"""The segmenters config key `segmentation.models` may name, each with its MONAI network.

Light: the rules and config checks import it; each builder imports MONAI when it runs. A new
segmenter is one `register` call here. Every network takes one grayscale channel and returns one
lesion logit channel; `build(widths, strides)` gets the five level widths (`channels`) and the
stride 2 between levels.

Models: `unet` (2 residual units per level), `attention_unet`, `unetpp` (BasicUNetPlusPlus, the
widths as its five encoder widths and the first again for its decoder head), `unetpp_ds` (UNet++
with deep supervision: four heads, each at full resolution) and DSUNet's deep-supervised UNet
`dsunet-s<n>[-adv]`: Dice on the last n decoder stages (1-4, counting from the output), `-adv`
adding a discriminator per supervised stage. The dsunet names share one network (`dsunet`:
MONAI `DynUNet`, kernel 3, strides 1, 2, 2, 2, 2, instance norm, LeakyReLU, 3 side heads
upsampled to full resolution by nearest neighbours), so DSUNet's Table 2 ablation is a list of
names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meddap.common.registry import Registry

if TYPE_CHECKING:
    import torch

Widths = tuple[int, ...]
DSUNET = "dsunet"
STAGES = (1, 2, 3, 4)


@dataclass(frozen=True)
class Supervision:
    """How a dsunet trains: Dice on its last `stages` decoder stages, discriminators or not."""

    stages: int
    adversarial: bool


@dataclass(frozen=True)
class Segmenter:
    """A segmenter: its network's name (seeds derive from it), builder and deep supervision."""

    network: str
    build: Callable[[Widths, Widths], torch.nn.Module]
    supervision: Supervision | None = None


def _unet(widths: Widths, strides: Widths) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(2, 1, 1, widths, strides, num_res_units=2)


def _attention_unet(widths: Widths, strides: Widths) -> torch.nn.Module:
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(2, 1, 1, widths, strides)


def _unetpp(widths: Widths, strides: Widths, deep_supervision: bool = False) -> torch.nn.Module:
    from monai.networks.nets import BasicUNetPlusPlus

    features = (*widths, widths[0])
    return BasicUNetPlusPlus(2, 1, 1, features, deep_supervision=deep_supervision)


def _unetpp_ds(widths: Widths, strides: Widths) -> torch.nn.Module:
    return _unetpp(widths, strides, deep_supervision=True)


def _dsunet(widths: Widths, strides: Widths) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    kernels, dyn_strides = (3,) * len(widths), (1, *strides)
    side = len(STAGES) - 1
    return DynUNet(
        2, 1, 1, kernels, dyn_strides, strides, widths, deep_supervision=True, deep_supr_num=side
    )


SEGMENTERS: Registry[Segmenter] = Registry("models", "segmentation.models")
SEGMENTERS.register("unet", Segmenter("unet", _unet))
SEGMENTERS.register("attention_unet", Segmenter("attention_unet", _attention_unet))
SEGMENTERS.register("unetpp", Segmenter("unetpp", _unetpp))
SEGMENTERS.register("unetpp_ds", Segmenter("unetpp_ds", _unetpp_ds))


def _register_dsunets() -> None:
    """dsunet-s1, dsunet-s1-adv, ..., dsunet-s4-adv: one network, each its supervision."""
    for stages in STAGES:
        for adversarial in (False, True):
            SEGMENTERS.register(
                f"{DSUNET}-s{stages}{'-adv' if adversarial else ''}",
                Segmenter(DSUNET, _dsunet, Supervision(stages, adversarial)),
                shown=f"{DSUNET}-s<stages {STAGES[0]}-{STAGES[-1]}>[-adv]",
            )


_register_dsunets()


def supervision_of(model: str) -> Supervision | None:
    """`"dsunet-s4-adv"` -> Supervision(4, True); the other models -> None; unknown ones stop."""
    return SEGMENTERS.get(model, "segmentation model").supervision


def network_of(model: str) -> str:
    """The network a model name builds: `dsunet` for every dsunet-*, else the name itself."""
    return SEGMENTERS.get(model, "segmentation model").network
