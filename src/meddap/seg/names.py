"""What a segmenter's wildcards may name (light: the rules and config checks import it).

Models: `unet`, `attention_unet`, `unetpp`, `unetpp_ds`, or seed 003's deep-supervised UNet
`dsunet-s<n>[-adv]`: Dice on the last n decoder stages (1-4, counting from the output), `-adv`
adding a discriminator per supervised stage. The dsunet names share one network (`dsunet`), so
seed 003's Table 2 ablation is a list of names.

Training sets: `real`, `aug-<name>` for one conventional augmentation (`deepstack`: all of
them), or `{condition}-{source}-{r}to{s}`: the real train split plus a prefix of a fold's
mask-conditioned synthetic set (seeds 001, 002; condition `mask` or `edge`, masks from `real`
train masks or `clinical` priors) at real:synthetic ratio r:s, `1to<k>` or `0to1` (synthetic only,
as many images as the real train split).
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
CONDITIONS = ("mask", "edge")  # those of meddap.masked.controlnet (a test keeps them equal)
MASK_SOURCES = ("real", "clinical")
_SYNTHETIC = re.compile(
    r"(?P<setting>(?P<condition>[a-z]+)-(?P<source>[a-z]+))-(?P<ratio>1to[1-9]\d*|0to1)"
)
RATIO = re.compile(r"(?P<real>1):(?P<synthetic>[1-9]\d*)|(?P<only>0:1)")


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


@dataclass(frozen=True)
class SyntheticSet:
    """A training set of real and mask-conditioned synthetic pairs: setting and ratio r:s."""

    setting: str  # {condition}-{source}: the generated set the prefix comes from
    condition: str
    source: str
    real: int  # 1: the real train split is in, 0: synthetic only
    synthetic: int  # synthetic images per real train image

    @property
    def ratio(self) -> str:
        """The ratio as the config writes it, e.g. "1:2"."""
        return f"{self.real}:{self.synthetic}"


def check_setting(setting: str) -> tuple[str, str]:
    """`"mask-clinical"` -> ("mask", "clinical"); stops on any other generator setting."""
    condition, _, source = setting.partition("-")
    if condition not in CONDITIONS or source not in MASK_SOURCES:
        raise MeddapError(
            f"synthesis setting {setting!r} is not {{condition}}-{{source}} with condition in "
            f"{CONDITIONS} and mask source in {MASK_SOURCES}"
        )
    if (condition, source) == ("edge", "clinical"):
        raise MeddapError(
            f"synthesis setting {setting!r}: edge conditioning needs a real image's edges, so "
            "its masks must come from 'real'"
        )
    return condition, source


def ratio_token(ratio: str) -> str:
    """`"1:2"` -> "1to2" (the trainset's suffix); stops on a ratio other than 1:k or 0:1."""
    if RATIO.fullmatch(ratio) is None:
        raise MeddapError(f"ratio {ratio!r} is not real:synthetic 1:<k> (k >= 1) or 0:1")
    return ratio.replace(":", "to")


def synthetic_of(trainset: str) -> SyntheticSet | None:
    """`"mask-real-1to2"` -> SyntheticSet("mask-real", "mask", "real", 1, 2); others -> None."""
    match = _SYNTHETIC.fullmatch(trainset)
    if match is None:
        return None
    condition, source = check_setting(match["setting"])
    real, synthetic = (int(n) for n in match["ratio"].split("to"))
    return SyntheticSet(match["setting"], condition, source, real, synthetic)


def augmentation_of(trainset: str) -> str | None:
    """`"aug-mirror"` -> "mirror"; `"real"` and synthetic sets -> None; anything else stops."""
    if trainset == "real" or synthetic_of(trainset) is not None:
        return None
    match = _AUG.fullmatch(trainset)
    if match is None or match["name"] not in (*AUGMENTATIONS, DEEPSTACK):
        names = ", ".join(f"aug-{n}" for n in (*AUGMENTATIONS, DEEPSTACK))
        raise MeddapError(
            f"segmentation trainset {trainset!r} is not real, one of {names} or "
            "{condition}-{source}-{r}to{s} (e.g. mask-clinical-1to2)"
        )
    return match["name"]
