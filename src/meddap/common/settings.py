"""Typed settings: the one way config reaches a job.

Each class holds the keys of one config section that one kind of job reads, so that changing a
key reruns exactly the jobs that read it (e.g. `lora.learning_rate` reruns the LoRA training but
not the latent cache, `curation.policy` the curation but not duplicate detection). A rule passes
`SETTINGS[name]` (`job_params`), plain values that Snakemake's params trigger compares;
`meddap.run.jobs` turns them back into the class the job function's annotation names. Keys that
shape the DAG rather than one job (grid axes such as `lora.ranks` or `synthesis.ratios`, the rank
choice, the external datasets) and `resources` stay with the rules: a job sees them as wildcards,
so adding a rank does not rerun the jobs of the other ranks. Unknown config keys are the
schema's to refuse (`workflow/schemas/config.schema.yaml`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from meddap.common.errors import MeddapError


@dataclass(frozen=True)
class Section:
    """Base of every settings class: built from a config section, checked key by key."""

    SECTION: ClassVar[str]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], key: str | None = None) -> Self:
        """The settings from a section's dict; a missing or unknown key stops with its name."""
        key = key or cls.SECTION
        if not isinstance(params, Mapping):
            raise MeddapError(f"config key {key} must be a mapping, got {params!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise MeddapError(f"config key {key}.{unknown[0]} is unknown (expected {names})")
        hints = typing.get_type_hints(cls)
        values = {}
        for name in names:
            if name not in params:
                raise MeddapError(f"config key {key}.{name} is missing")
            kind, value = hints[name], params[name]
            nested = isinstance(kind, type) and issubclass(kind, Section)
            values[name] = kind.from_params(value, f"{key}.{name}") if nested else value
        return cls(**values)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """This class's keys of its section of a full (validated) config."""
        section: Any = config
        for part in cls.SECTION.split("."):  # nested sections: "segmentation.pairs"
            if not isinstance(section, Mapping) or part not in section:
                raise MeddapError(f"config key {cls.SECTION} is missing")
            section = section[part]
        return cls.from_params(_pick(cls, section))

    def params(self) -> dict[str, Any]:
        """Plain values, as a rule passes them to its job."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Archives(Section):
    """`archives`: what an archive may hold before it is extracted (fetch_dataset)."""

    SECTION = "archives"
    max_member_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class CurationSearch(Section):
    """`curation`: how duplicate pairs are found, aligned and scored (find_duplicates)."""

    SECTION = "curation"
    image_size: int
    candidate_size: int
    candidates: int
    threshold: float
    mask_iou: float


@dataclass(frozen=True)
class Curation(Section):
    """`curation`: what the curation drops (curate)."""

    SECTION = "curation"
    policy: str


@dataclass(frozen=True)
class MaskCheck(Section):
    """`curation`: what ingest does with a mask that contradicts its image's label."""

    SECTION = "curation"
    mask_label: str


@dataclass(frozen=True)
class Folds(Section):
    """`folds`: patient- and duplicate-safe k-fold splits."""

    SECTION = "folds"
    source: str
    k: int
    val_fraction: float
    seed: int


@dataclass(frozen=True)
class Diffusion(Section):
    """`diffusion`: how the embedded tiny model is built (`base_model` is a rule input)."""

    SECTION = "diffusion"
    tiny_seed: int


@dataclass(frozen=True)
class LoraCache(Section):
    """`lora`: how a fold's latent and text cache is encoded (encode_fold)."""

    SECTION = "lora"
    resolution: int
    flip: bool
    train_adjective: str


@dataclass(frozen=True)
class Lora(Section):
    """`lora`: the USLoRA training of one fold and rank (its grid axis `ranks` is the rules')."""

    SECTION = "lora"
    targets: str
    epochs: int
    batch_size: int
    learning_rate: float
    checkpoint_every: int
    mixed_precision: str
    gradient_checkpointing: bool


@dataclass(frozen=True)
class Sampling(Section):
    """`synthesis.sampling`: how images are sampled."""

    SECTION = "synthesis.sampling"
    scheduler: str
    steps: int
    guidance_scale: float
    negative_prompt: str
    batch_size: int
    resolution: int
    image_size: int


@dataclass(frozen=True)
class Synthesis(Section):
    """`synthesis` without its grid axes (adjectives, ratios) and the rank choice."""

    SECTION = "synthesis"
    pool: int
    sampling: Sampling


@dataclass(frozen=True)
class Quality(Section):
    """`quality`: FID/KID and diversity of a synthetic set."""

    SECTION = "quality"
    feature_model: str
    image_size: int
    inception_weights: str | None
    diversity_pairs: int


@dataclass(frozen=True)
class Budget(Section):
    """`<family>.training`: the optimizer updates every training set of a model family gets.

    `steps` updates at most, validated every `eval_every`; the learning rate warms up linearly
    over `warmup` updates, then follows a cosine to zero at `steps`; a run stops early after
    `patience` validations without improvement (null: never).
    """

    SECTION = "training"
    steps: int
    eval_every: int
    warmup: int
    patience: int | None


@dataclass(frozen=True)
class Augment(Section):
    """`classifier.augment`: on-the-fly augmentations of the classifier's training images."""

    SECTION = "classifier.augment"
    hflip: bool
    rotation: float
    crop: float
    jitter: float


@dataclass(frozen=True)
class Classifier(Section):
    """`classifier` without its grid axes (models, external datasets)."""

    SECTION = "classifier"
    image_size: int
    training: Budget
    batch_size: int
    learning_rate: float
    balance: str
    pretrained: str
    augment: Augment
    device: str
    mixed_precision: str


@dataclass(frozen=True)
class DeepSupervision(Section):
    """`segmentation.deep_supervision`: DSUNet's loss weights and discriminator rate (dsunet)."""

    SECTION = "segmentation.deep_supervision"
    alpha: list[float]
    beta: float
    discriminator_lr: float


@dataclass(frozen=True)
class Segmentation(Section):
    """`segmentation` without its grid axes (models, trainsets, external datasets)."""

    SECTION = "segmentation"
    classes: str
    image_size: int
    channels: list[int]
    training: Budget
    batch_size: int
    learning_rate: float
    loss: str
    augment_probability: float
    device: str
    mixed_precision: str
    deep_supervision: DeepSupervision


@dataclass(frozen=True)
class ControlNetTraining(Section):
    """`segmentation.pairs.training`: the per-fold ControlNet fine-tuning's optimisation."""

    SECTION = "segmentation.pairs.training"
    steps: int
    batch_size: int
    learning_rate: float
    flip: bool
    checkpoint_every: int


@dataclass(frozen=True)
class ControlNetSize(Section):
    """`segmentation.pairs.sampling.resolution`: the pools' size, which their ControlNet
    also trains at."""

    SECTION = "segmentation.pairs.sampling"
    resolution: int


@dataclass(frozen=True)
class ControlNetFit(Section):
    """`segmentation.pairs`: what a fold's ControlNet trains on and how (train_controlnet)."""

    SECTION = "segmentation.pairs"
    prompts: str
    training: ControlNetTraining
    sampling: ControlNetSize


@dataclass(frozen=True)
class ClinicalPrior(Section):
    """`segmentation.pairs.clinical`: elastic deformation of ClinicalPrior's ellipse masks."""

    SECTION = "segmentation.pairs.clinical"
    sigma: float
    alpha: float


@dataclass(frozen=True)
class PairSynthesis(Section):
    """`segmentation.pairs` without its grid axes (settings, ratios): one pair set's making."""

    SECTION = "segmentation.pairs"
    pool: int
    prompts: str
    clinical: ClinicalPrior
    sampling: Sampling


@dataclass(frozen=True)
class Multitask(Section):
    """`multitask` without its grid axes (backbones, modes): MTL's joint model."""

    SECTION = "multitask"
    image_size: int
    channels: list[int]
    head_width: int
    head_hidden: int
    training: Budget
    batch_size: int
    learning_rate: float
    device: str


SETTINGS: dict[str, type[Section]] = {
    "archives": Archives,
    "similarity": CurationSearch,
    "curation": Curation,
    "mask_check": MaskCheck,
    "folds": Folds,
    "diffusion": Diffusion,
    "encoding": LoraCache,
    "lora": Lora,
    "synthesis": Synthesis,
    "quality": Quality,
    "classifier": Classifier,
    "segmentation": Segmentation,
    "multitask": Multitask,
    "controlnet": ControlNetFit,
    "pairs_synthesis": PairSynthesis,
}


def job_params(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every settings class's keys of `config` as the plain dicts rules pass, by param name."""
    return {name: cls.from_config(config).params() for name, cls in SETTINGS.items()}


def _pick(cls: type[Section], section: Any) -> Any:
    """The keys of `section` that `cls` (and its nested classes) hold; the rest is others'."""
    if not isinstance(section, Mapping):
        return section
    hints = typing.get_type_hints(cls)
    picked = {}
    for field in dataclasses.fields(cls):
        if field.name in section:
            kind, value = hints[field.name], section[field.name]
            nested = isinstance(kind, type) and issubclass(kind, Section)
            picked[field.name] = _pick(kind, value) if nested else value
    return picked
