"""What a segmenter's wildcards may name (light: the rules and config checks import it).

Models: `meddap.seg.registry` (`network_of` is re-exported here).

Training sets: `real`, `aug-<name>` for one conventional augmentation (`deepstack`: all of
them), or `{condition}-{source}-{r}to{s}`: the real train split plus a prefix of a fold's
mask-conditioned synthetic set (seeds 001, 002; condition `mask` or `edge`, or `text`: seed
001's text-only ablation, the plain base model with the prompt alone, its masks those the image
was meant to follow; masks from `real` train masks or `clinical` priors) at real:synthetic ratio
r:s, `1to<k>` or `0to1` (synthetic only, as many images as the real train split).
`{condition}-real-{r}to{s}-mix{λ}p{p}` (e.g.
`mask-real-1to2-mix0.5p4`) is the same set with seed 002's patch mixing (`meddap.seg.augment`):
each synthetic image, split into a p x p grid, shows its real parent's pixels in each cell with
probability λ; λ in (0, 1) as Python writes the float (0.25, not .25 or 0.250), p >= 2. Only
`real` mask sources have parents (pixel-aligned, sharing the mask), so `clinical` ones stop, and
so do `text` ones (their images follow no mask, so they are not pixel-aligned with the parent).
Classifiers train on the same unmixed `1to<k>` sets (`classifier_set_of`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meddap.common.errors import MeddapError
from meddap.seg.registry import network_of as network_of

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
TEXT = "text"  # seed 001's text-only ablation: no ControlNet, the prompt alone
SETTING_CONDITIONS = (*CONDITIONS, TEXT)
MASK_SOURCES = ("real", "clinical")
_SYNTHETIC = re.compile(
    r"(?P<setting>(?P<condition>[a-z]+)-(?P<source>[a-z]+))-(?P<ratio>1to[1-9]\d*|0to1)"
    r"(?:-mix(?P<mix_lambda>[0-9.]+)p(?P<mix_patches>[0-9]+))?"
)
MIXING_SOURCE = "real"  # the one mask source whose synthetic images have a real parent
RATIO = re.compile(r"(?P<real>1):(?P<synthetic>[1-9]\d*)|(?P<only>0:1)")


@dataclass(frozen=True)
class SyntheticSet:
    """A training set of real and mask-conditioned synthetic pairs: setting and ratio r:s."""

    setting: str  # {condition}-{source}: the generated set the prefix comes from
    condition: str
    source: str
    real: int  # 1: the real train split is in, 0: synthetic only
    synthetic: int  # synthetic images per real train image
    mix_lambda: float | None = None  # patch mixing: chance a cell shows the real parent
    mix_patches: int | None = None  # patch mixing: cells per side of the grid

    @property
    def ratio(self) -> str:
        """The ratio as the config writes it, e.g. "1:2"."""
        return f"{self.real}:{self.synthetic}"

    @property
    def mixed(self) -> bool:
        """Whether the set mixes patches of the real parents into its synthetic images."""
        return self.mix_lambda is not None


def mixing_token(mix_lambda: float | str, patches: int) -> str:
    """(0.5, 4) -> "mix0.5p4" (the trainset's suffix); stops on a lambda or grid that is none."""
    try:
        value = float(mix_lambda)
    except ValueError:
        value = float("nan")
    text = repr(value)
    if not 0 < value < 1 or re.fullmatch(r"0\.\d+", text) is None:
        raise MeddapError(
            f"patch mixing lambda {mix_lambda!r} is not a decimal strictly between 0 and 1 "
            "(e.g. 0.25, 0.5 or 0.75: the chance each cell shows the real parent)"
        )
    if isinstance(patches, bool) or not isinstance(patches, int) or patches < 2:
        raise MeddapError(
            f"patch mixing grid {patches!r} is not an integer of at least 2 (cells per side)"
        )
    return f"mix{text}p{patches}"


def mixing_of(
    lambda_text: str, patches_text: str, trainset: str, source: str, condition: str = "mask"
) -> tuple[float, int]:
    """The (lambda, p) of a trainset's `mix{λ}p{p}`; stops on a `clinical` source, a `text`
    condition or a bad one."""
    if condition == TEXT:
        raise MeddapError(
            f"segmentation trainset {trainset!r} mixes patches of real parents, but {TEXT!r} "
            "images follow no mask, so they are not pixel-aligned with their parent"
        )
    if source != MIXING_SOURCE:
        raise MeddapError(
            f"segmentation trainset {trainset!r} mixes patches of real parents, but mask source "
            f"{source!r} has none (only {MIXING_SOURCE!r} masks come from a real train image)"
        )
    written, patches = f"mix{lambda_text}p{patches_text}", int(patches_text)  # digits only
    try:
        token = mixing_token(lambda_text, patches)
    except MeddapError as err:
        raise MeddapError(f"segmentation trainset {trainset!r}: {err}") from None
    value = float(lambda_text)
    if token != written:
        raise MeddapError(
            f"segmentation trainset {trainset!r} writes its patch mixing {written} but the one "
            f"name of lambda {value} and grid {patches} is {token} (so each point has one name)"
        )
    return value, patches


def check_setting(setting: str) -> tuple[str, str]:
    """`"mask-clinical"` -> ("mask", "clinical"); stops on any other generator setting."""
    condition, _, source = setting.partition("-")
    if condition not in SETTING_CONDITIONS or source not in MASK_SOURCES:
        raise MeddapError(
            f"synthesis setting {setting!r} is not {{condition}}-{{source}} with condition in "
            f"{SETTING_CONDITIONS} and mask source in {MASK_SOURCES}"
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
    """`"mask-real-1to2"` -> SyntheticSet("mask-real", "mask", "real", 1, 2); others -> None.

    `"mask-real-1to2-mix0.5p4"` also sets mix_lambda 0.5 and mix_patches 4.
    """
    match = _SYNTHETIC.fullmatch(trainset)
    if match is None:
        return None
    condition, source = check_setting(match["setting"])
    real, synthetic = (int(n) for n in match["ratio"].split("to"))
    mixing: tuple[float | None, int | None] = (None, None)
    if match["mix_lambda"] is not None:
        mixing = mixing_of(match["mix_lambda"], match["mix_patches"], trainset, source, condition)
    return SyntheticSet(match["setting"], condition, source, real, synthetic, *mixing)


def synthetic_name(wanted: SyntheticSet) -> str:
    """The trainset name of a synthetic set (the inverse of `synthetic_of`)."""
    name = f"{wanted.setting}-{wanted.real}to{wanted.synthetic}"
    if wanted.mixed:
        name += f"-{mixing_token(wanted.mix_lambda, wanted.mix_patches)}"
    return name


def augmentation_of(trainset: str) -> str | None:
    """`"aug-mirror"` -> "mirror"; `"real"` and synthetic sets -> None; anything else stops."""
    if trainset == "real" or synthetic_of(trainset) is not None:
        return None
    match = _AUG.fullmatch(trainset)
    if match is None or match["name"] not in (*AUGMENTATIONS, DEEPSTACK):
        names = ", ".join(f"aug-{n}" for n in (*AUGMENTATIONS, DEEPSTACK))
        raise MeddapError(
            f"segmentation trainset {trainset!r} is not real, one of {names} or "
            "{condition}-{source}-{r}to{s}[-mix{lambda}p{p}] (e.g. mask-clinical-1to2, "
            "mask-real-1to2-mix0.5p4)"
        )
    return match["name"]


def classifier_set_of(trainset: str) -> SyntheticSet | None:
    """The mask-conditioned set a classifier trainset names (`"mask-real-1to2"`), None for the
    others; stops on a synthetic-only one (the pairs are lesions, so no normal image would be
    left) or a patch-mixed one (mixing is a segmenter's loss-side augmentation)."""
    masked = synthetic_of(trainset)
    if masked is not None and masked.real == 0:
        raise MeddapError(
            f"classifier trainset {trainset}: 0:1 (synthetic only) has no normal image "
            "(mask-conditioned pairs are lesions), so only segmenters train on it"
        )
    if masked is not None and masked.mixed:
        raise MeddapError(
            f"classifier trainset {trainset}: patch mixing is for segmenters only; the "
            f"classifier set is {masked.setting}-{ratio_token(masked.ratio)}"
        )
    return masked
