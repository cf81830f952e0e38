"""Training sets of the downstream classifiers: `real` or `r{rank}-{adjective}-{ratio}`.

Rank 0 is the base model without LoRA.

A synthetic training set is the real train split of a fold plus the first
ceil(n_train * ratio / 100) images of that fold's nested synthetic set (rank, adjective).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from meddap.common.errors import MeddapError

_NAME = re.compile(r"r(?P<rank>0|[1-9]\d*)-(?P<adjective>[a-z]+(?:-[a-z]+)*)-(?P<ratio>[1-9]\d*)")
SYNTH_COLUMNS = ("id", "index", "label", "image_path")


def prefix_size(n_train: int, ratio: int) -> int:
    """Number of synthetic images for `ratio` percent of a train split of `n_train` images."""
    return math.ceil(n_train * ratio / 100)


def parse_trainset(name: str) -> tuple[int, str, int] | None:
    """`"r4-high-contrast-100"` -> (4, "high-contrast", 100); `"real"` -> None."""
    if name == "real":
        return None
    match = _NAME.fullmatch(name)
    if match is None:
        raise MeddapError(
            f"trainset {name!r} is neither 'real' nor r{{rank}}-{{adjective}}-{{ratio}} "
            "(e.g. r4-high-contrast-50)"
        )
    return int(match["rank"]), match["adjective"], int(match["ratio"])


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


def load_synthetic(path: str, fold: int, trainset: str, n_train: int) -> pd.DataFrame:
    """The synthetic rows that `trainset` adds to fold `fold`'s `n_train` real train images.

    The manifest at `path` must belong to the trainset's fold, rank and adjective where it
    records them.
    """
    parsed = parse_trainset(trainset)
    if parsed is None:
        raise MeddapError(f"trainset 'real' takes no synthetic manifest, got {path}")
    rank, adjective, ratio = parsed
    table = pd.read_parquet(path)
    for key, expected in (("fold", fold), ("rank", rank), ("adjective", adjective)):
        found = set(table[key]) if key in table.columns else {expected}
        if found != {expected}:
            raise MeddapError(
                f"{path} holds {key} {sorted(found)} but trainset {trainset} of fold {fold} "
                f"needs {key} {expected!r}"
            )
    try:
        return synthetic_prefix(table, n_train, ratio)
    except MeddapError as err:
        raise MeddapError(f"{path}: {err}") from None
