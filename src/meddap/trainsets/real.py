"""`real`: the fold's real train split alone."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meddap.trainsets.base import CLASSIFIER, SEGMENTER, TrainingSet


@dataclass(frozen=True)
class Real(TrainingSet):
    """The real train split, nothing added."""

    PATTERN = re.compile("real")
    GRAMMAR = "real"
    TASKS = (CLASSIFIER, SEGMENTER)
    LISTED = True

    @classmethod
    def from_match(cls, match: re.Match[str]) -> Real:
        return cls()

    @property
    def name(self) -> str:
        return "real"
