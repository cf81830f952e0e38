"""What a segmenter's wildcards may name (light: the rules and config checks import it).

Training sets: `real`, or `aug-<name>` for one conventional augmentation (`deepstack`: all of
them); mask-conditioned synthetic sets will be `{generator}-{ratio}` in the same grammar.
"""

from __future__ import annotations

import re

from meddap.common.errors import MeddapError

MODELS = ("unet", "attention_unet", "unetpp", "unetpp_ds")
AUGMENTATIONS = (
    "rotate",
    "scale",
    "noise",
    "brightness",
    "contrast",
    "resolution",
    "gamma",
    "mirror",
)  # nnU-Net's order, the order of deepstack
DEEPSTACK = "deepstack"
_AUG = re.compile(r"aug-(?P<name>[a-z]+)")


def augmentation_of(trainset: str) -> str | None:
    """`"aug-mirror"` -> "mirror"; `"real"` -> None; anything else stops naming the trainset."""
    if trainset == "real":
        return None
    match = _AUG.fullmatch(trainset)
    if match is None or match["name"] not in (*AUGMENTATIONS, DEEPSTACK):
        names = ", ".join(f"aug-{n}" for n in (*AUGMENTATIONS, DEEPSTACK))
        raise MeddapError(f"segmentation trainset {trainset!r} is not real or one of {names}")
    return match["name"]
