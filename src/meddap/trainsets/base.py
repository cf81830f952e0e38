"""What every kind of training set is: a name of one grammar, parsed into a frozen object.

A kind (one module of `meddap.trainsets`) knows its pattern, which jobs train on it, which names
a config asks for, what a job on it reads besides the fold's real images, and the rows it adds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from meddap.common.errors import MeddapError

CLASSIFIER, SEGMENTER = "classifier", "segmenter"  # the jobs that train on training sets
REGISTRY: list[type[TrainingSet]] = []  # every kind, in the order their modules are imported


def wildcard(pattern: re.Pattern[str]) -> str:
    """`pattern` without its group names: a Snakemake wildcard constraint of the same shape."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern)


@dataclass(frozen=True)
class TrainingSet:
    """The real train split of a fold, and whatever a kind adds to it."""

    PATTERN: ClassVar[re.Pattern[str]]
    GRAMMAR: ClassVar[str]  # the name's form, for the error naming every kind
    TASKS: ClassVar[tuple[str, ...]]  # the jobs that train on it
    SYNTHETIC: ClassVar[bool] = False  # whether a job reads a synthetic manifest
    LISTED: ClassVar[bool] = False  # named in `segmentation.trainsets` (else planned from a grid)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGISTRY.append(cls)

    @classmethod
    def parse(cls, name: str) -> TrainingSet | None:
        """The set `name` names if it has this kind's pattern, else None; stops on a bad one."""
        match = cls.PATTERN.fullmatch(name)
        return None if match is None else cls.from_match(match)

    @classmethod
    def from_match(cls, match: re.Match[str]) -> TrainingSet:
        """The set of a name that has the pattern (stops where its parts are not allowed)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The name, as the results paths write it."""
        raise NotImplementedError

    @property
    def includes_real(self) -> bool:
        """Whether the real train split is in (a synthetic-only set leaves it out)."""
        return True

    @property
    def mixing(self) -> tuple[float, int] | None:
        """A segmenter's patch mixing (lambda, p) of its synthetic images; None here."""
        return None

    @property
    def augmentations(self) -> tuple[str, ...]:
        """A segmenter's conventional augmentations (`meddap.seg.augment`); none here."""
        return ()

    def trainable_by(self, task: str) -> TrainingSet:
        """This set, once `task` jobs train on it (else stop: a job checks what planning did)."""
        if task not in self.TASKS:
            raise MeddapError(
                f"{task} trainset {self.name!r} is a {self.GRAMMAR} set, which only "
                f"{' and '.join(self.TASKS)} jobs train on"
            )
        return self

    def check(self, config: dict[str, Any], task: str) -> None:
        """Stop before planning a `task` job on this set that could not be trained."""
        self.trainable_by(task)

    def manifests(self, keys: dict[str, Any]) -> list[str]:
        """The synthetic manifest a job of fold `keys` reads (none here)."""
        return []

    def files(self, keys: dict[str, Any]) -> list[str]:
        """The folders of that manifest's images a job reads (its audited inputs; none here)."""
        return []

    def rows(self, manifest: str, fold: int, train: pd.DataFrame, task: str) -> pd.DataFrame:
        """The synthetic rows this set adds to a fold's real `train` rows, read from `manifest`."""
        raise NotImplementedError

    def added_rows(
        self, manifests: list[str], fold: int, train: pd.DataFrame, task: str
    ) -> pd.DataFrame | None:
        """`rows` of the job's one synthetic manifest (None for a set that adds none), once a
        `task` job trains on this set."""
        self.trainable_by(task)
        wanted = 1 if self.SYNTHETIC else 0
        if len(manifests) != wanted:
            raise MeddapError(
                f"trainset {self.name} needs {wanted} synthetic manifest(s), got {manifests}"
            )
        return self.rows(manifests[0], fold, train, task) if manifests else None
