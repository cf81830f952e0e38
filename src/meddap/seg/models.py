"""The segmenters (`meddap.seg.registry`), all from MONAI: one grayscale channel in, one lesion
logit channel out.

`channels` (five widths) sets every network's levels, 2x downsampling between them. In training
a model returns a tensor, a list of heads (UNet++) or the heads stacked on dim 1 (DynUNet, main
head first); in eval mode DynUNet returns its main head only. `heads` orders them main head
first, then coarser stages, as `DeepSupervisionLoss` weighs them.

DSUNet's discriminator (`build_discriminator`, one per supervised stage) reads a probability
map (the stage's sigmoid, or a ground-truth mask) alone, as in its eq. (1), not the image: five
MONAI `Convolution`s with kernels 7, 5, 4, 4, 4, strides 2, 2, 2, 2, 1, padding (k - 1) // 2
(each stride-2 layer halves the map), the segmenter's first four widths (`channels[:4]`) and
then 1 channel, LeakyReLU 0.2 after the first four and instance norm on layers 2-4 (PatchGAN
style), then the mean of the last map: one logit per image. From 32 px on (the smallest
`image_size`) the last map has at least one pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution

from meddap.common.errors import MeddapError
from meddap.common.settings import Segmentation
from meddap.common.weights import read_weights
from meddap.seg.registry import SEGMENTERS

DISCRIMINATOR_KERNELS = (7, 5, 4, 4, 4)
DISCRIMINATOR_STRIDES = (2, 2, 2, 2, 1)
LEAKY = ("leakyrelu", {"negative_slope": 0.2})


def build_segmenter(name: str, channels: Sequence[int]) -> torch.nn.Module:
    """The MONAI network of model `name` with five level widths `channels` (random weights)."""
    if len(channels) != 5:
        raise MeddapError(f"config key segmentation.channels needs 5 widths, got {channels}")
    segmenter = SEGMENTERS.get(name, "segmentation model")
    return segmenter.build(tuple(channels), (2,) * (len(channels) - 1))


def build_discriminator(channels: Sequence[int]) -> torch.nn.Sequential:
    """One stage's discriminator: (N, 1, S, S) probability maps -> (N, 1) logits (real: high)."""
    widths = (1, *channels[:4], 1)
    layers = [
        Convolution(
            2,
            widths[i],
            widths[i + 1],
            strides=stride,
            kernel_size=kernel,
            padding=(kernel - 1) // 2,
            act=LEAKY if i < 4 else None,
            norm="instance" if 0 < i < 4 else None,
            conv_only=i == 4,
        )
        for i, (kernel, stride) in enumerate(
            zip(DISCRIMINATOR_KERNELS, DISCRIMINATOR_STRIDES, strict=True)
        )
    ]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def heads(output: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A model's output heads, main (final) head first."""
    if isinstance(output, torch.Tensor):
        return list(output.unbind(1)) if output.ndim == 5 else [output]
    return list(reversed(output))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The main head's logits (N, 1, S, S) of `images`, on the CPU, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    parts = [heads(model(b.to(device)))[0].float().cpu() for b in images.split(batch_size)]
    return torch.cat(parts)


def load_segmenter(path: str, model: str, how: Segmentation) -> torch.nn.Module:
    """The trained `model` of a weights file; stops naming the file if it holds another one."""
    state, meta = read_weights(path, "segmenter weights file")
    expected = {"model": model, "channels": list(how.channels), "image_size": how.image_size}
    found = {key: meta.get(key) for key in expected}
    if found != expected:
        raise MeddapError(f"{path} holds a segmenter {found}, expected {expected}")
    net = build_segmenter(model, how.channels)
    net.load_state_dict(state)
    return net
