"""The segmenters, all from MONAI: one grayscale channel in, one lesion logit channel out.

`channels` (five widths) sets every network's levels: UNet and AttentionUnet downsample by 2
between them (UNet with 2 residual units per level); BasicUNetPlusPlus takes them as its five
encoder widths (and the first again for its decoder head); `unetpp_ds` is UNet++ with deep
supervision (its four heads, each at full resolution). A model returns a tensor or, for UNet++,
a list of heads; `heads` orders them main head first, as `DeepSupervisionLoss` weighs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import AttentionUnet, BasicUNetPlusPlus, UNet

from meddap.common.errors import MeddapError
from meddap.seg.names import MODELS


def build_segmenter(name: str, channels: Sequence[int]) -> torch.nn.Module:
    """The MONAI network `name` with five level widths `channels` (random weights)."""
    if len(channels) != 5:
        raise MeddapError(f"config key segmentation.channels needs 5 widths, got {channels}")
    widths, strides = tuple(channels), (2,) * (len(channels) - 1)
    if name == "unet":
        return UNet(2, 1, 1, widths, strides, num_res_units=2)
    if name == "attention_unet":
        return AttentionUnet(2, 1, 1, widths, strides)
    if name in ("unetpp", "unetpp_ds"):
        features = (*widths, widths[0])
        return BasicUNetPlusPlus(2, 1, 1, features, deep_supervision=name == "unetpp_ds")
    raise MeddapError(f"segmentation model {name!r} is not one of {MODELS}")


def heads(output: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A model's output heads, main (final) head first."""
    return [output] if isinstance(output, torch.Tensor) else list(reversed(output))


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The main head's logits (N, 1, S, S) of `images`, on the CPU, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    parts = [heads(model(b.to(device)))[0].float().cpu() for b in images.split(batch_size)]
    return torch.cat(parts)
