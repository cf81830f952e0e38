"""MTL's multi-task network: a MONAI segmenter with a classification head on its features.

The backbones are the segmentation track's deep-supervised networks (`meddap.seg.models`): UNet++
(`unetpp_ds`, MONAI `BasicUNetPlusPlus`) and the nnU-Net-style `DynUNet` (`dsunet-s4`). Forward
hooks take three maps of the level before the bottleneck: the encoder's, the decoder's and the
upsampled bottleneck (all at that level's size). The head, as the paper describes it:
concatenation -> 3x3 convolution (`width`) + instance norm + ReLU -> adaptive average pooling ->
FC `hidden` + ReLU -> one logit per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import BasicUNetPlusPlus, DynUNet

from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES
from meddap.multitask.modes import BACKBONES
from meddap.seg.models import build_segmenter

N_HEADS = 4  # deep-supervision outputs of both: UNet++ x_0_1..x_0_4, dsunet-s4 main + 3 sides


def _taps(net: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(encoder, decoder, bottleneck upsampling) modules of the level before the bottleneck."""
    if isinstance(net, BasicUNetPlusPlus):
        return net.conv_3_0, net.upcat_3_1, net.upcat_3_1.upsample
    if isinstance(net, DynUNet):
        return net.downsamples[-1], net.upsamples[0], net.upsamples[0].transp_conv
    raise MeddapError(f"no multi-task taps for a {type(net).__name__}")


class ClassHead(torch.nn.Module):
    """Concatenated feature maps -> class logits (N, len(CLASSES))."""

    def __init__(self, in_channels: int, width: int, hidden: int) -> None:
        super().__init__()
        self.conv = Convolution(2, in_channels, width, kernel_size=3, norm="instance", act="relu")
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(width, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, len(CLASSES)),
        )

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.pool(self.conv(torch.cat(list(maps), dim=1))))


class MultiTaskNet(torch.nn.Module):
    """A segmenter returning (its segmentation output, class logits)."""

    def __init__(self, backbone: str, channels: Sequence[int], width: int, hidden: int) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise MeddapError(f"multi-task backbone {backbone!r} is not one of {BACKBONES}")
        self.segmenter = build_segmenter(backbone, channels)
        self._maps: list[torch.Tensor] = []
        for module in _taps(self.segmenter):
            module.register_forward_hook(self._keep)
        # encoder and decoder have the level's width, and so has DynUNet's upsampled bottleneck;
        # UNet++'s UpCat upsamples to half the bottleneck's width
        up = channels[3] if isinstance(self.segmenter, DynUNet) else channels[4] // 2
        self.head = ClassHead(2 * channels[3] + up, width, hidden)

    def _keep(self, _module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self._maps.append(output)

    def forward(self, x: torch.Tensor) -> tuple[object, torch.Tensor]:
        self._maps = []
        segmentation = self.segmenter(x)
        encoder, decoder, bottleneck = self._ordered()
        return segmentation, self.head([encoder, decoder, bottleneck])

    def _ordered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three maps in (encoder, decoder, bottleneck) order; hooks fire in forward order
        (encoder, upsampled bottleneck, decoder)."""
        if len(self._maps) != 3:
            raise MeddapError(f"expected 3 tapped feature maps, got {len(self._maps)}")
        encoder, bottleneck, decoder = self._maps
        return encoder, decoder, bottleneck
