"""Training sets: one small class per kind, a registry of the kinds and one parser of names.

A training set is named by a results path's `{trainset}` wildcard. Kinds: `real`
(`meddap.trainsets.real`), text-to-image synthetic `r{rank}-{adjective}-{ratio}` (`.text`),
conventional augmentation `aug-<name>` (`.augmented`) and mask-conditioned pairs
`{condition}-{source}-{r}to{s}[-mix{λ}p{p}]` (`.pairs`). A new kind is a new module whose class
joins `KINDS`; the rules' wildcard constraints and the name checks follow from it.
"""

from __future__ import annotations

from functools import cache

from meddap.common.errors import MeddapError
from meddap.trainsets.augmented import Augmented
from meddap.trainsets.base import CLASSIFIER, SEGMENTER, TrainingSet, wildcard
from meddap.trainsets.pairs import PairSet
from meddap.trainsets.real import Real
from meddap.trainsets.text import TextSet

__all__ = [
    "CLASSIFIER",
    "KINDS",
    "SEGMENTER",
    "WILDCARDS",
    "Augmented",
    "PairSet",
    "Real",
    "TextSet",
    "TrainingSet",
    "parse",
    "planned",
]
KINDS: tuple[type[TrainingSet], ...] = (Real, TextSet, Augmented, PairSet)
GRAMMAR = ", ".join(kind.GRAMMAR for kind in KINDS)


def wildcard_of(task: str) -> str:
    """The `{trainset}` wildcard constraint of a `task` job: the patterns of its kinds."""
    return "|".join(wildcard(kind.PATTERN) for kind in KINDS if task in kind.TASKS)


WILDCARDS = {task: wildcard_of(task) for task in (CLASSIFIER, SEGMENTER)}


@cache
def parse(name: str) -> TrainingSet:
    """The training set `name` names; stops on a name of no kind or with parts not allowed."""
    for kind in KINDS:
        parsed = kind.parse(name)
        if parsed is not None:
            return parsed
    raise MeddapError(f"trainset {name!r} is none of the kinds of training set: {GRAMMAR}")


def planned(name: str, config: dict, task: str) -> TrainingSet:
    """`parse(name)`, checked to be one a `task` job of `config` can train on."""
    trainset = parse(name)
    trainset.check(config, task)
    return trainset
