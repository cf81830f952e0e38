"""Patient- and duplicate-safe k-fold splits (train/val/test), stratified by label.

Images are grouped so that no patient and no duplicate group straddles splits: the groups are
the connected components of "same patient_id" and "same duplicate_group" links; an image with
neither is its own group. Fold f's test split is fold f of scikit-learn's
`StratifiedGroupKFold(k, shuffle=True, random_state=seed)`, or with `folds.source: release`
the release's official test fold f (its layout's `folds`, `meddap.data.layouts`); its val split
is the first fold of a `StratifiedGroupKFold` over the rest (random_state=seed + f) sized to about
`val_fraction` of all images; the remaining images are train.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from meddap.common.atomic import write_parquet
from meddap.common.errors import MeddapError
from meddap.common.settings import Folds
from meddap.data.curation import member_groups
from meddap.data.layouts import check_release_folds

GROUP_KEYS = ("patient_id", "duplicate_group")
SOURCES = ("own", "release")


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
    _check_fraction(k, val_fraction)
    images = curated.sort_values("id", kind="stable").reset_index(drop=True)
    labels = images["label"].to_numpy()
    groups = leakage_groups(images)
    _check_k(labels, groups, k)
    outer = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    tests = [test for _, test in outer.split(labels, labels, groups)]
    return _with_val(images, groups, tests, val_fraction, seed)


def release_splits(
    curated: pd.DataFrame, test_fold: pd.Series, k: int, val_fraction: float, seed: int
) -> pd.DataFrame:
    """As `make_splits`, but fold f's test split is the release's (`test_fold`: fold per id),
    checked to keep every patient and duplicate group on one side."""
    _check_fraction(k, val_fraction)
    missing = sorted(set(curated["id"]) - set(test_fold.index))
    if missing:
        raise MeddapError(
            f"config key folds.source: the release's folds have no row for image {missing[0]}"
        )
    images = curated.sort_values("id", kind="stable").reset_index(drop=True)
    groups, folds = leakage_groups(images), images["id"].map(test_fold).to_numpy()
    straddling = pd.Series(folds).groupby(groups).nunique().gt(1)
    if straddling.any():
        ids = images["id"][groups == straddling.idxmax()]
        raise MeddapError(
            f"config key folds.source: the release puts images {', '.join(ids)} of one patient "
            "or duplicate group in different test folds (use folds.source: own)"
        )
    tests = [np.flatnonzero(folds == fold) for fold in range(k)]
    return _with_val(images, groups, tests, val_fraction, seed)


def _with_val(
    images: pd.DataFrame,
    groups: np.ndarray,
    tests: list[np.ndarray],
    val_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """Rows id, fold, split: fold f tests `tests[f]`, a grouped stratified val split of about
    `val_fraction` of all images comes from the rest (seed + f), the remainder trains."""
    labels, k = images["label"].to_numpy(), len(tests)
    folds = []
    for fold, test in enumerate(tests):
        rest = np.setdiff1d(np.arange(len(images)), test)
        split = np.full(len(images), "train", dtype=object)
        split[test] = "test"
        split[rest[_val_subset(labels[rest], groups[rest], k, val_fraction, seed + fold)]] = "val"
        folds.append(pd.DataFrame({"id": images["id"], "fold": fold, "split": split}))
    return pd.concat(folds, ignore_index=True)


def _check_fraction(k: int, val_fraction: float) -> None:
    if k < 2:
        raise MeddapError(f"config key folds.k must be at least 2, got {k}")
    if not 0 < val_fraction < 1 - 1 / k:
        raise MeddapError(
            f"config key folds.val_fraction must lie in (0, {1 - 1 / k:.3f}), got {val_fraction}"
        )


def split_folds(
    *,
    curated: str,
    duplicates: str,
    splits: str,
    folds: Folds,
    layout: str,
    release: Sequence[str] = (),
) -> None:
    """Snakemake job: curated.parquet (+ duplicate groups from duplicates.parquet) -> splits,
    our own (`make_splits`) or, with folds.source release, the official folds of the dataset
    folder `release[0]` (`release_splits`; `release[1]` is its source fingerprint)."""
    table = pd.read_parquet(curated)
    missing = [c for c in ("id", "label") if c not in table.columns]
    if missing:
        raise MeddapError(f"{curated} lacks the columns {missing}")
    groups = table["id"].map(member_groups(pd.read_parquet(duplicates))).astype("Int64")
    table = table.assign(duplicate_group=groups)
    if folds.source == "release":
        read_folds = check_release_folds(layout, folds.k, "folds.source")
        test_fold = read_folds(Path(release[0]), folds.k)
        made = release_splits(table, test_fold, folds.k, folds.val_fraction, folds.seed)
    else:
        made = make_splits(table, folds.k, folds.val_fraction, folds.seed)
    write_parquet(made, splits)


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
