"""Duplicate detection by all-pairs SSIM and the curation policies (Curated-BUSI, seed 004).

Ids are compared as plain strings everywhere: `id_a < id_b` in a pair, groups are numbered in
the order of their smallest member id, and `keep_one_consistent` keeps that smallest id.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import jaccard_score

from meddap.common.atomic import write_parquet
from meddap.common.errors import MeddapError
from meddap.common.images import load_gray
from meddap.common.settings import Curation, Similarity
from meddap.data.ssim import WIN, pairwise_ssim

MANIFEST_COLUMNS = ("id", "label", "image_path", "mask_path")
DUPLICATE_COLUMNS = ("id_a", "id_b", "ssim", "same_label", "mask_iou", "group")
POLICIES = ("drop_all", "keep_one_consistent", "none")
log = logging.getLogger(__name__)


def find_duplicates(manifest: pd.DataFrame, image_size: int, threshold: float) -> pd.DataFrame:
    """Candidate duplicate pairs (SSIM >= threshold at image_size) grouped by connectivity."""
    _check_manifest(manifest, "manifest")
    if image_size < WIN:
        raise MeddapError(
            f"config key curation.image_size must be at least {WIN}, got {image_size}"
        )
    images = manifest.sort_values("id", kind="stable").reset_index(drop=True)
    ssim = pairwise_ssim(load_gray(images["image_path"].tolist(), image_size))
    a, b = np.nonzero(np.triu(ssim >= threshold, 1))
    pairs = pd.DataFrame(
        {
            "id_a": images["id"].to_numpy()[a],
            "id_b": images["id"].to_numpy()[b],
            "ssim": ssim[a, b],
            "same_label": images["label"].to_numpy()[a] == images["label"].to_numpy()[b],
            "mask_iou": _mask_ious(images, a, b, image_size),
            "group": _groups(len(images), a, b),
        }
    )
    return pairs.sort_values(["group", "id_a", "id_b"], ignore_index=True)


def member_groups(duplicates: pd.DataFrame) -> pd.Series:
    """The duplicate group of every id that appears in a candidate pair (index: id)."""
    members = pd.concat(
        [
            duplicates[["id_a", "group"]].set_axis(["id", "group"], axis=1),
            duplicates[["id_b", "group"]].set_axis(["id", "group"], axis=1),
        ]
    ).drop_duplicates("id")
    return members.set_index("id")["group"].astype("Int64")


def apply_policy(manifest: pd.DataFrame, duplicates: pd.DataFrame, policy: str) -> pd.DataFrame:
    """The curated manifest: rows the policy keeps, plus a nullable `duplicate_group` column.

    drop_all: every member of every group leaves (the published Curated-BUSI rule).
    keep_one_consistent: a group whose labels agree keeps its smallest id; any other group leaves.
    none: nothing leaves.
    """
    if policy not in POLICIES:
        raise MeddapError(f"config key curation.policy must be one of {POLICIES}, got {policy!r}")
    groups = member_groups(duplicates)
    unknown = sorted(set(groups.index) - set(manifest["id"]))
    if unknown:
        raise MeddapError(f"duplicates name ids absent from the manifest: {unknown[:5]}")
    curated = manifest.assign(duplicate_group=manifest["id"].map(groups).astype("Int64"))
    if policy == "none":
        return curated.reset_index(drop=True)
    keep = curated["duplicate_group"].isna()
    if policy == "keep_one_consistent":
        keep |= curated["id"].isin(_consistent_representatives(curated))
    return curated[keep].reset_index(drop=True)


def find_duplicates_job(*, manifest: str, duplicates: str, similarity: Similarity) -> None:
    """Snakemake job: manifest.parquet -> duplicates.parquet."""
    table = pd.read_parquet(manifest)
    _check_manifest(table, manifest)
    pairs = find_duplicates(table, similarity.image_size, similarity.ssim_threshold)
    sizes = member_groups(pairs).value_counts()  # members per group
    log.info(
        "%d images: %d pairs at SSIM >= %s (%d with different labels) in %d groups, sizes %s",
        len(table),
        len(pairs),
        similarity.ssim_threshold,
        int((~pairs["same_label"]).sum()),
        len(sizes),
        {int(size): int(n) for size, n in sizes.value_counts().sort_index().items()},
    )
    write_parquet(pairs, duplicates)


def curate(*, manifest: str, duplicates: str, curated: str, curation: Curation) -> None:
    """Snakemake job: manifest.parquet + duplicates.parquet -> curated.parquet."""
    table = pd.read_parquet(manifest)
    _check_manifest(table, manifest)
    pairs = pd.read_parquet(duplicates)
    missing = [c for c in DUPLICATE_COLUMNS if c not in pairs.columns]
    if missing:
        raise MeddapError(f"{duplicates} lacks the columns {missing} of a duplicates table")
    kept = apply_policy(table, pairs, curation.policy)
    removed = table[~table["id"].isin(kept["id"])]["label"].value_counts().sort_index()
    log.info(
        "policy %s keeps %d of %d images; removed per class: %s",
        curation.policy,
        len(kept),
        len(table),
        {label: int(n) for label, n in removed.items()},
    )
    write_parquet(kept, curated)


def _check_manifest(manifest: pd.DataFrame, name: str) -> None:
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise MeddapError(f"{name} lacks the manifest columns {missing}")
    if manifest["id"].duplicated().any():
        raise MeddapError(f"{name} has repeated ids, expected one row per image")


def _groups(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Group number of each pair: connected components, numbered by smallest member index."""
    _, component = connected_components(coo_array((np.ones(len(a)), (a, b)), shape=(n, n)))
    # images are sorted by id, so ascending member indices meet each group at its smallest id
    order = {c: k for k, c in enumerate(dict.fromkeys(component[np.unique(np.r_[a, b])]))}
    return np.array([order[c] for c in component[a]], dtype=np.int64)


def _mask_ious(images: pd.DataFrame, a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """Mask IoU of each pair at (size, size), nearest; NaN if a mask is missing or both empty."""
    paths = images["mask_path"]
    present = [k for k in np.unique(np.r_[a, b]) if not pd.isna(paths.iat[k])]
    loaded = load_gray([paths.iat[k] for k in present], size, Image.Resampling.NEAREST) > 0
    masks = dict(zip(present, loaded, strict=True))
    return np.array([_iou(masks.get(i), masks.get(j)) for i, j in zip(a, b, strict=True)])


def _iou(x: np.ndarray | None, y: np.ndarray | None) -> float:
    if x is None or y is None or not (x.any() or y.any()):
        return float("nan")
    return float(jaccard_score(x.ravel(), y.ravel()))


def _consistent_representatives(curated: pd.DataFrame) -> list[str]:
    """The smallest id of every duplicate group whose members all carry the same label."""
    members = curated.dropna(subset=["duplicate_group"])
    by_group = members.groupby("duplicate_group")
    consistent = by_group["label"].nunique() == 1
    return by_group["id"].min()[consistent].tolist()
