"""`{condition}-{source}-{r}to{s}[-mix{λ}p{p}]`: real plus mask-conditioned synthetic pairs.

The real train split plus a prefix of a fold's mask-conditioned synthetic pool (ClinicalPrior,
DiffBoost; `meddap.pairs`): condition `mask` or `edge`, or `text` (ClinicalPrior's text-only
ablation: the plain base model with the prompt alone, its masks those the image was meant to
follow); masks from `real` train masks or `clinical` priors; real:synthetic ratio r:s, `1to<k>` or
`0to1` (synthetic only, as many images as the real train split). `-mix{λ}p{p}` (e.g.
`mask-real-1to2-mix0.5p4`) is the same set with DiffBoost's patch mixing (`meddap.seg.augment`):
each synthetic image, split into a p x p grid, shows its real parent's pixels in each cell with
probability λ; λ in (0, 1) as Python writes the float (0.25, not .25 or 0.250), p >= 2. Only `real`
mask sources have parents (pixel-aligned, sharing the mask), so `clinical` ones stop, and so do
`text` ones (their images follow no mask). Classifiers train on the unmixed `1to<k>` sets: k x the
train split's lesion images (the pairs are lesions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.common.splits import read_table
from meddap.trainsets.base import CLASSIFIER, SEGMENTER, TrainingSet, wildcard
from meddap.trainsets.text import synthetic_prefix

CONDITIONS = ("mask", "edge")  # those of meddap.pairs.controlnet (a test keeps them equal)
TEXT = "text"  # ClinicalPrior's text-only ablation: no ControlNet, the prompt alone
SETTING_CONDITIONS = (*CONDITIONS, TEXT)
MASK_SOURCES = ("real", "clinical")
MIXING_SOURCE = "real"  # the one mask source whose synthetic images have a real parent
RATIO = re.compile(r"(?P<real>1):(?P<synthetic>[1-9]\d*)|(?P<only>0:1)")
SETTING = re.compile(
    rf"(?P<condition>{'|'.join(SETTING_CONDITIONS)})-(?P<source>{'|'.join(MASK_SOURCES)})"
)
CONDITION_WILDCARD = "|".join(CONDITIONS)
SETTING_WILDCARD = wildcard(SETTING)
COLUMNS = ("id", "label", "image_path", "mask_path")


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


def mixable(setting: str) -> bool:
    """Whether a setting's images have pixel-aligned real parents to mix patches of."""
    condition, source = check_setting(setting)
    return source == MIXING_SOURCE and condition != TEXT


def ratio_token(ratio: str) -> str:
    """`"1:2"` -> "1to2" (the trainset's suffix); stops on a ratio other than 1:k or 0:1."""
    if RATIO.fullmatch(ratio) is None:
        raise MeddapError(f"ratio {ratio!r} is not real:synthetic 1:<k> (k >= 1) or 0:1")
    return ratio.replace(":", "to")


def _mixing_of(match: re.Match[str], condition: str, source: str) -> tuple[float, int]:
    """The (lambda, p) of a trainset's `mix{λ}p{p}`; stops on a `clinical` source, a `text`
    condition or a bad one."""
    trainset = match[0]
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
    lambda_text, patches = match["mix_lambda"], int(match["mix_patches"])  # digits only
    written = f"mix{lambda_text}p{match['mix_patches']}"
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


@dataclass(frozen=True)
class PairSet(TrainingSet):
    """Real (r = 1) or not (0) plus s synthetic pairs per real image of pool `setting`."""

    setting: str  # {condition}-{source}: the generated pool the prefix comes from
    condition: str
    source: str
    real: int  # 1: the real train split is in, 0: synthetic only
    synthetic: int  # synthetic images per real train image
    mix_lambda: float | None = None  # patch mixing: chance a cell shows the real parent
    mix_patches: int | None = None  # patch mixing: cells per side of the grid

    PATTERN = re.compile(
        r"(?P<setting>(?P<condition>[a-z]+)-(?P<source>[a-z]+))-(?P<ratio>1to[1-9]\d*|0to1)"
        r"(?:-mix(?P<mix_lambda>[0-9.]+)p(?P<mix_patches>[0-9]+))?"
    )
    GRAMMAR = "{condition}-{source}-{r}to{s}[-mix{lambda}p{p}]"
    TASKS = (CLASSIFIER, SEGMENTER)
    SYNTHETIC = True

    @classmethod
    def from_match(cls, match: re.Match[str]) -> PairSet:
        condition, source = check_setting(match["setting"])
        real, synthetic = (int(n) for n in match["ratio"].split("to"))
        mixing: tuple[float | None, int | None] = (None, None)
        if match["mix_lambda"] is not None:
            mixing = _mixing_of(match, condition, source)
        return cls(match["setting"], condition, source, real, synthetic, *mixing)

    @property
    def name(self) -> str:
        name = f"{self.setting}-{self.real}to{self.synthetic}"
        if self.mixed:
            name += f"-{mixing_token(self.mix_lambda, self.mix_patches)}"
        return name

    @property
    def ratio(self) -> str:
        """The ratio as the config writes it, e.g. "1:2"."""
        return f"{self.real}:{self.synthetic}"

    @property
    def mixed(self) -> bool:
        """Whether the set mixes patches of the real parents into its synthetic images."""
        return self.mix_lambda is not None

    @property
    def includes_real(self) -> bool:
        return bool(self.real)

    @property
    def mixing(self) -> tuple[float, int] | None:
        return (self.mix_lambda, self.mix_patches) if self.mixed else None

    @classmethod
    def grid(cls, config: dict[str, Any], task: str) -> list[str]:
        """The segmenters' sets (settings x ratios, then the mixed ones) or the classifiers'."""
        seg = config["segmentation"]
        synthesis = seg["pairs"]
        settings = synthesis["settings"] if seg["models"] else []
        names = [f"{s}-{ratio_token(r)}" for s in settings for r in synthesis["ratios"]]
        names += [  # every mixable setting x ratio, 0:1 included, x lambda x p
            f"{s}-{ratio_token(r)}-{mixing_token(lam, p)}"
            for s in settings
            if mixable(s)
            for r in synthesis["ratios"]
            for lam in synthesis["mixing"]["lambdas"]
            for p in synthesis["mixing"]["patches"]
        ]
        if task == SEGMENTER:
            return names
        wanted = [cls.parse(n) for n in names] if synthesis["classifiers"] else []
        return [p.name for p in wanted if p.real and not p.mixed]

    def trainable_by(self, task: str) -> PairSet:
        """Classifiers take no synthetic-only (no normal image) or mixed set."""
        super().trainable_by(task)
        if task == CLASSIFIER and self.real == 0:
            raise MeddapError(
                f"classifier trainset {self.name}: 0:1 (synthetic only) has no normal image "
                "(mask-conditioned pairs are lesions), so only segmenters train on it"
            )
        if task == CLASSIFIER and self.mixed:
            raise MeddapError(
                f"classifier trainset {self.name}: patch mixing is for segmenters only; the "
                f"classifier set is {self.setting}-{ratio_token(self.ratio)}"
            )
        return self

    def check(self, config: dict[str, Any], task: str) -> None:
        """`trainable_by`, and the ratio must fit in each pool."""
        super().check(config, task)
        pool = config["segmentation"]["pairs"]["pool"]
        if self.synthetic > pool:
            raise MeddapError(
                f"trainset {self.name} needs {self.synthetic} synthetic pairs per real image, "
                f"but config key 'segmentation.pairs.pool' generates {pool}"
            )

    def _keys(self, keys: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": keys["dataset"], "fold": keys["fold"], "setting": self.setting}

    def manifests(self, keys: dict[str, Any]) -> list[str]:
        return [paths.PAIRS_MANIFEST.format(**self._keys(keys))]

    def files(self, keys: dict[str, Any]) -> list[str]:
        """The pool's image and mask folders. A mixed set's real parents are train images of the
        curated manifest, already inputs of every job."""
        return [
            paths.PAIRS_IMAGES.format(**self._keys(keys)),
            paths.PAIRS_MASKS.format(**self._keys(keys)),
        ]

    def rows(self, manifest: str, fold: int, train: pd.DataFrame, task: str) -> pd.DataFrame:
        """The pool's first s x n pairs: n real train images for a segmenter, lesion ones for a
        classifier. The pool must be the fold's and the setting's, and hold that many in order.
        A mixed set's rows also name each pair's `parent_id` and `parent_image_path`."""
        n_train = len(train) if task == SEGMENTER else int((train["label"] != "normal").sum())
        table = read_table(manifest, [*COLUMNS, "index", "fold", "setting"])
        for key, expected in (("fold", fold), ("setting", self.setting)):
            if set(table[key]) != {expected}:
                raise MeddapError(
                    f"{manifest} holds {key} {sorted(set(table[key]))} but trainset {self.name} "
                    f"of fold {fold} needs {expected!r}"
                )
        try:  # the classifiers' nested-prefix rule, at 100 k percent of the real train split
            prefix = synthetic_prefix(table, n_train, 100 * self.synthetic)
        except MeddapError:
            raise MeddapError(
                f"{manifest} holds {len(table)} pairs but trainset {self.name} needs the first "
                f"{self.synthetic * n_train} ({self.synthetic} per real train image): raise "
                "segmentation.pairs.pool"
            ) from None
        return self._with_parents(prefix, train, manifest) if self.mixed else prefix[list(COLUMNS)]

    def _with_parents(
        self, prefix: pd.DataFrame, train: pd.DataFrame, manifest: str
    ) -> pd.DataFrame:
        """`prefix`'s pairs with their parent's id and image path (the fold's real `train` rows)."""
        if "parent_id" not in prefix.columns:
            raise MeddapError(
                f"{manifest} lacks the column parent_id that trainset {self.name} mixes"
            )
        images = dict(zip(train["id"].astype(str), train["image_path"], strict=True))
        parent = prefix["parent_id"].map(lambda p: None if pd.isna(p) else str(p))
        orphans = prefix.loc[~parent.isin(list(images)), "id"]
        if not orphans.empty:
            raise MeddapError(
                f"{manifest}: pair {orphans.iloc[0]!r} has no parent among the fold's train "
                f"images, but trainset {self.name} mixes each pair with its real parent"
            )
        return prefix[list(COLUMNS)].assign(parent_id=parent, parent_image_path=parent.map(images))
