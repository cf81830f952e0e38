"""Training sets: one small class per kind, a registry of the kinds and one parser of names.

A training set is named by a results path's `{trainset}` wildcard. Kinds: `real`
(`meddap.trainsets.real`), text-to-image synthetic `r{rank}-{adjective}-{ratio}` (`.text`),
conventional augmentation `aug-<name>` (`.augmented`) and mask-conditioned pairs
`{condition}-{source}-{r}to{s}[-mix{λ}p{p}]` (`.pairs`). A new kind is a new module of this
package with a `TrainingSet` subclass: importing the package registers it in `KINDS` (as nnU-Net
finds its trainer classes), and the rules' wildcard constraints and the name checks follow.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from meddap.common.errors import MeddapError
from meddap.trainsets.augmented import Augmented
from meddap.trainsets.base import CLASSIFIER, REGISTRY, SEGMENTER, TrainingSet, wildcard
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
    "check_listed",
    "parse",
    "planned",
]
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
KINDS: tuple[type[TrainingSet], ...] = tuple(REGISTRY)
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


def planned(name: str, config: dict[str, Any], task: str) -> TrainingSet:
    """`parse(name)`, checked to be one a `task` job of `config` can train on."""
    trainset = parse(name)
    trainset.check(config, task)
    return trainset


def check_listed(names: list[str], key: str) -> None:
    """Each of `names` (config key `key`) is a segmenter set of a kind the config lists by name."""
    listed = ", ".join(kind.GRAMMAR for kind in KINDS if kind.LISTED)
    for index, name in enumerate(names):
        try:
            wanted = parse(name).trainable_by(SEGMENTER)
        except MeddapError as err:
            raise MeddapError(f"config key '{key}.{index}': {err}") from None
        if not wanted.LISTED:
            raise MeddapError(
                f"config key '{key}.{index}': {name!r} is planned from its own config section, "
                f"not listed; this key lists {listed}"
            )
