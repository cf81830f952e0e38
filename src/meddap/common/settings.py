"""Typed settings: one frozen dataclass per config section, the one way config reaches a job.

A rule passes a section as the plain dict `SECTIONS[name].from_config(config).params()` (plain
values, so that Snakemake's params trigger sees every change); `meddap.run.jobs` turns it back
into the dataclass that the job function's annotation names. Keys that shape the DAG rather
than one job (grid axes such as `lora.ranks` or `synthesis.ratios`, the rank choice, the
external datasets) and `resources` stay with the rules: a job sees them as wildcards, so adding
a rank does not rerun the jobs of the other ranks.
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
    RULE_ONLY: ClassVar[tuple[str, ...]] = ("resources",)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], key: str | None = None) -> Self:
        """The settings from a section's dict; a missing or unknown key stops with its name."""
        key = key or cls.SECTION
        if not isinstance(params, Mapping):
            raise MeddapError(f"config key {key} must be a mapping, got {params!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(names) - set(cls.RULE_ONLY))
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
        """The settings of this section of a full (validated) config."""
        if cls.SECTION not in config:
            raise MeddapError(f"config key {cls.SECTION} is missing")
        return cls.from_params(config[cls.SECTION])

    def params(self) -> dict[str, Any]:
        """Plain values, as a rule passes them to its job."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Curation(Section):
    """`curation`: duplicate detection and the curation policy."""

    SECTION = "curation"
    image_size: int
    ssim_threshold: float
    policy: str


@dataclass(frozen=True)
class Folds(Section):
    """`folds`: patient- and duplicate-safe k-fold splits."""

    SECTION = "folds"
    k: int
    val_fraction: float
    seed: int


@dataclass(frozen=True)
class Diffusion(Section):
    """`diffusion`: the base Stable Diffusion ('tiny' = the embedded one)."""

    SECTION = "diffusion"
    base_model: str
    tiny_seed: int


@dataclass(frozen=True)
class Lora(Section):
    """`lora` without its grid axis `ranks`: the latent cache and the USLoRA training."""

    SECTION = "lora"
    RULE_ONLY = ("ranks", "resources")
    targets: str
    resolution: int
    flip: bool
    train_adjective: str
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
    RULE_ONLY = ("adjectives", "ratios", "rank", "resources")
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
class Augment(Section):
    """`classifier.augment`: on-the-fly augmentations of the classifier's training images."""

    SECTION = "classifier.augment"
    hflip: bool
    rotation: float


@dataclass(frozen=True)
class Classifier(Section):
    """`classifier` without its grid axes (models, external datasets)."""

    SECTION = "classifier"
    RULE_ONLY = ("models", "external", "resources")
    image_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    pretrained: str
    augment: Augment
    device: str
    mixed_precision: str


SECTIONS: dict[str, type[Section]] = {
    cls.SECTION: cls for cls in (Curation, Folds, Diffusion, Lora, Synthesis, Quality, Classifier)
}


def job_params(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every section's settings as the plain dicts rules pass (validated on the way)."""
    return {name: cls.from_config(config).params() for name, cls in SECTIONS.items()}
