"""The rows of fold f, split s: the one reader every stage uses for its slice of the data."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES

SPLITS = ("train", "val", "test")


def read_table(path: str, columns: Sequence[str]) -> pd.DataFrame:
    """A Parquet table that must hold `columns`; stops naming the file and the missing ones."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise MeddapError(f"{path} could not be read as a Parquet table ({err})") from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MeddapError(f"{path} lacks the columns {missing}")
    return table


def check_labels(table: pd.DataFrame, path: str) -> pd.DataFrame:
    """`table` unchanged, unless a label lies outside the classes (then stop naming `path`)."""
    unknown = sorted(set(table["label"]) - set(CLASSES))
    if unknown:
        raise MeddapError(f"{path} has labels {unknown} outside {list(CLASSES)}")
    return table


def split_ids(splits: str, fold: int, split: str) -> list[str]:
    """The sorted ids of split `split` of fold `fold`; stops when there are none."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    table = read_table(splits, ["id", "fold", "split"])
    ids = table.loc[(table["fold"] == fold) & (table["split"] == split), "id"].astype(str)
    if ids.empty:
        raise MeddapError(f"{splits} has no {split} images for fold {fold}")
    return sorted(ids)


def split_rows(
    manifest: str,
    splits: str,
    fold: int,
    split: str,
    columns: Sequence[str] = ("id", "label", "image_path"),
) -> pd.DataFrame:
    """Manifest rows (`columns`) of split `split` of fold `fold`, sorted by id.

    Stops with one sentence when the split is empty, an id is not in the manifest, a column is
    missing or a label is not one of the classes.
    """
    ids = split_ids(splits, fold, split)
    table = read_table(manifest, list(dict.fromkeys(["id", "label", *columns])))
    table = check_labels(table.assign(id=table["id"].astype(str)), manifest).set_index("id")
    missing = sorted(set(ids) - set(table.index))
    if missing:
        raise MeddapError(
            f"{splits} lists {split} id {missing[0]!r} of fold {fold} that {manifest} does not hold"
        )
    return table.loc[ids].reset_index()[list(columns)]
