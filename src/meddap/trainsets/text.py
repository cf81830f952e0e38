"""`r{rank}-{adjective}-{ratio}`: the real train split plus a text-to-image synthetic prefix.

Rank 0 is the base model without LoRA. The set adds the first ceil(n_train * ratio / 100) images
of the fold's nested synthetic set of that rank and adjective (`meddap.synth`); classifiers only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.trainsets.base import CLASSIFIER, TrainingSet

SYNTH_COLUMNS = ("id", "index", "label", "image_path")
ADJECTIVE = r"[a-z]+(?:-[a-z]+)*"  # the prompt adjective: also the rules' `{adjective}` wildcard


def prefix_size(n_train: int, ratio: int) -> int:
    """Number of synthetic images for `ratio` percent of a train split of `n_train` images."""
    return math.ceil(n_train * ratio / 100)


def synthetic_prefix(synth_manifest: pd.DataFrame, n_train: int, ratio: int) -> pd.DataFrame:
    """The first ceil(n_train * ratio / 100) rows of a nested synthetic set, ordered by `index`."""
    missing = [c for c in SYNTH_COLUMNS if c not in synth_manifest.columns]
    if missing:
        raise MeddapError(f"the synthetic manifest lacks the columns {missing}")
    wanted = prefix_size(n_train, ratio)
    ordered = synth_manifest.sort_values("index", kind="stable").reset_index(drop=True)
    if not np.array_equal(ordered["index"].to_numpy()[:wanted], np.arange(wanted)):
        raise MeddapError(
            f"the synthetic manifest has {len(ordered)} images but trainset ratio {ratio}% of "
            f"{n_train} train images needs the indices 0..{wanted - 1} without gaps"
        )
    return ordered.head(wanted)


@dataclass(frozen=True)
class TextSet(TrainingSet):
    """Real + `ratio` percent of the fold's synthetic set of LoRA `rank` and `adjective`."""

    rank: int
    adjective: str
    ratio: int

    PATTERN = re.compile(rf"r(?P<rank>0|[1-9]\d*)-(?P<adjective>{ADJECTIVE})-(?P<ratio>[1-9]\d*)")
    GRAMMAR = "r{rank}-{adjective}-{ratio}"
    TASKS = (CLASSIFIER,)
    SYNTHETIC = True

    @classmethod
    def from_match(cls, match: re.Match[str]) -> TextSet:
        return cls(int(match["rank"]), match["adjective"], int(match["ratio"]))

    @property
    def name(self) -> str:
        return f"r{self.rank}-{self.adjective}-{self.ratio}"

    @classmethod
    def grid(cls, config: dict[str, Any], ranks: Sequence[int]) -> list[str]:
        """Each of `ranks`' sets: every `synthesis.adjectives` x `synthesis.ratios`."""
        synthesis = config["synthesis"]
        return [
            cls(k, a, r).name
            for k in ranks
            for a in synthesis["adjectives"]
            for r in synthesis["ratios"]
        ]

    def check(self, config: dict[str, Any], task: str) -> None:
        super().check(config, task)
        pool = config["synthesis"]["pool"]
        if self.ratio > pool:
            raise MeddapError(
                f"target trainset {self.name}: ratio {self.ratio}% exceeds config key "
                f"'synthesis.pool' ({pool}%), the size of each generated set"
            )

    def manifests(self, keys: dict[str, Any]) -> list[str]:
        where = {"dataset": keys["dataset"], "fold": keys["fold"]}
        return [paths.SYNTH_MANIFEST.format(rank=self.rank, adjective=self.adjective, **where)]

    def rows(self, manifest: str, fold: int, train: pd.DataFrame, task: str) -> pd.DataFrame:
        """The manifest's prefix for `train`; the manifest must be of the set's fold, rank and
        adjective where it records them."""
        table = pd.read_parquet(manifest)
        for key, expected in (("fold", fold), ("rank", self.rank), ("adjective", self.adjective)):
            found = set(table[key]) if key in table.columns else {expected}
            if found != {expected}:
                raise MeddapError(
                    f"{manifest} holds {key} {sorted(found)} but trainset {self.name} of fold "
                    f"{fold} needs {key} {expected!r}"
                )
        try:
            return synthetic_prefix(table, len(train), self.ratio)
        except MeddapError as err:
            raise MeddapError(f"{manifest}: {err}") from None
