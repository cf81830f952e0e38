"""What a segmenter's `{model}` wildcard may name (light: the rules and config checks import it).

Models: `unet`, `attention_unet`, `unetpp`, `unetpp_ds`, or seed 003's deep-supervised UNet
`dsunet-s<n>[-adv]`: Dice on the last n decoder stages (1-4, counting from the output), `-adv`
adding a discriminator per supervised stage. The dsunet names share one network (`dsunet`), so
seed 003's Table 2 ablation is a list of names.

Training sets are `meddap.trainsets`' (their grammar lives there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meddap.common.errors import MeddapError

DSUNET = "dsunet"
STAGES = (1, 2, 3, 4)
MODELS = (
    "unet",
    "attention_unet",
    "unetpp",
    "unetpp_ds",
    *(f"{DSUNET}-s{n}{adv}" for n in STAGES for adv in ("", "-adv")),
)
GRAMMAR = "unet, attention_unet, unetpp, unetpp_ds or dsunet-s<stages 1-4>[-adv]"
_DSUNET = re.compile(rf"{DSUNET}-s(?P<stages>\d+)(?P<adversarial>-adv)?")
# the `{model}` wildcard of classifier and segmenter paths: any such name, so that a misspelt one
# reaches the rules' input functions, which stop naming the model vocabulary (check_model)
MODEL_WILDCARD = r"[a-z0-9_]+(-[a-z0-9]+)*"


@dataclass(frozen=True)
class Supervision:
    """How a dsunet trains: Dice on its last `stages` decoder stages, discriminators or not."""

    stages: int
    adversarial: bool


def check_model(model: str, what: str = "segmentation model") -> None:
    """Stop, naming `model` and the grammar, unless it is a segmenter name."""
    if model not in MODELS:
        raise MeddapError(
            f"{what} {model!r} is not one of the models of config key "
            f"'segmentation.models' ({GRAMMAR})"
        )


def supervision_of(model: str) -> Supervision | None:
    """`"dsunet-s4-adv"` -> Supervision(4, True); the other models -> None; unknown ones stop."""
    check_model(model)
    match = _DSUNET.fullmatch(model)
    if match is None:
        return None
    return Supervision(int(match["stages"]), match["adversarial"] is not None)


def network_of(model: str) -> str:
    """The network a model name builds: `dsunet` for every dsunet-*, else the name itself."""
    return DSUNET if supervision_of(model) else model
