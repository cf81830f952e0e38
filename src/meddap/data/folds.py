"""Patient- and duplicate-safe k-fold splits (train/val/test), stratified by label.

Images are grouped so that no patient and no duplicate group straddles splits: the groups are
the connected components of "same patient_id" and "same duplicate_group" links; an image with
neither is its own group. Fold f's test split is fold f of scikit-learn's
`StratifiedGroupKFold(k, shuffle=True, random_state=seed)`; its val split is the first fold of a
`StratifiedGroupKFold` over the rest (random_state=seed + f) sized to about `val_fraction` of all
images; the remaining images are train.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from meddap.common.atomic import write_parquet
from meddap.common.errors import MeddapError
from meddap.common.settings import Folds
from meddap.data.curation import member_groups

GROUP_KEYS = ("patient_id", "duplicate_group")


def leakage_groups(curated: pd.DataFrame) -> np.ndarray:
    """Group number (0..G-1) of every row: images linked by a shared patient_id/duplicate_group.

    The graph joins each image to a node per value of each key; its connected components are
    the groups.
    """
    n = len(curated)
    images, values = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    nodes = n
    for key in GROUP_KEYS:
        if key in curated.columns:
            codes, uniques = pd.factorize(curated[key])
            linked = np.flatnonzero(codes >= 0)
            images.append(linked)
            values.append(nodes + codes[linked])
            nodes += len(uniques)
    edges = (np.concatenate(images), np.concatenate(values))
    graph = coo_array((np.ones(len(edges[0])), edges), shape=(nodes, nodes))
    components = connected_components(graph, directed=False)[1][:n]
    return np.unique(components, return_inverse=True)[1]


def make_splits(curated: pd.DataFrame, k: int, val_fraction: float, seed: int) -> pd.DataFrame:
    """One row per (image, fold): columns id, fold (0..k-1), split (train|val|test)."""
    if k < 2:
        raise MeddapError(f"config key folds.k must be at least 2, got {k}")
    if not 0 < val_fraction < 1 - 1 / k:
        raise MeddapError(
            f"config key folds.val_fraction must lie in (0, {1 - 1 / k:.3f}), got {val_fraction}"
        )
    images = curated.sort_values("id", kind="stable").reset_index(drop=True)
    labels = images["label"].to_numpy()
    groups = leakage_groups(images)
    _check_k(labels, groups, k)
    outer = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    folds = []
    for fold, (rest, test) in enumerate(outer.split(labels, labels, groups)):
        split = np.full(len(images), "train", dtype=object)
        split[test] = "test"
        split[rest[_val_subset(labels[rest], groups[rest], k, val_fraction, seed + fold)]] = "val"
        folds.append(pd.DataFrame({"id": images["id"], "fold": fold, "split": split}))
    return pd.concat(folds, ignore_index=True)


def split_folds(*, curated: str, duplicates: str, splits: str, folds: Folds) -> None:
    """Snakemake job: curated.parquet (+ duplicate groups from duplicates.parquet) -> splits."""
    table = pd.read_parquet(curated)
    missing = [c for c in ("id", "label") if c not in table.columns]
    if missing:
        raise MeddapError(f"{curated} lacks the columns {missing}")
    groups = table["id"].map(member_groups(pd.read_parquet(duplicates))).astype("Int64")
    table = table.assign(duplicate_group=groups)
    write_parquet(make_splits(table, folds.k, folds.val_fraction, folds.seed), splits)


def _check_k(labels: np.ndarray, groups: np.ndarray, k: int) -> None:
    """Every class needs at least k groups so that each fold's test split can hold it."""
    per_class = pd.Series(groups).groupby(labels).nunique()
    if len(np.unique(groups)) < k or (per_class < k).any():
        raise MeddapError(
            f"config key folds.k={k} is too large: the classes have only "
            f"{per_class.to_dict()} independent image groups"
        )


def _val_subset(
    labels: np.ndarray, groups: np.ndarray, k: int, val_fraction: float, seed: int
) -> np.ndarray:
    """Indices (into labels) of a grouped, stratified val split of about val_fraction overall."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise MeddapError(f"config key folds.k={k} leaves too few image groups for a val split")
    largest_class = int(np.unique(labels, return_counts=True)[1].max())
    n_splits = min(max(round((1 - 1 / k) / val_fraction), 2), n_groups, largest_class)
    if n_splits < 2:
        raise MeddapError(f"config key folds.k={k} leaves too few images for a val split")
    inner = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a rare class may have fewer groups than n_splits
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        _, val = next(inner.split(labels, labels, groups))
    return val
