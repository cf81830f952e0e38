"""Folds: every image tested once, no patient or duplicate group straddles splits, stratified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meddap.common.errors import MeddapError
from meddap.common.settings import Folds
from meddap.data.folds import leakage_groups, make_splits, split_folds
from meddap.data.layouts import slug

LABELS = {"benign": 0.5, "malignant": 0.3, "normal": 0.2}


def synthetic_curated(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Images of patients with 1-3 images each (some unknown), some duplicate pairs across them."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(LABELS), size=n, p=list(LABELS.values()))
    patient = np.repeat(np.arange(n), rng.integers(1, 4, size=n))[:n].astype(object)
    patient[rng.random(n) < 0.3] = None
    duplicate = pd.array([pd.NA] * n, dtype="Int64")
    for group, (a, b) in enumerate(rng.choice(n, size=(15, 2), replace=False)):
        duplicate[a] = duplicate[b] = group
    return pd.DataFrame(
        {
            "id": [f"img_{k:03d}" for k in range(n)],
            "label": labels,
            "patient_id": [None if p is None else f"p{p}" for p in patient],
            "duplicate_group": duplicate,
        }
    )


@pytest.fixture(scope="module")
def curated() -> pd.DataFrame:
    return synthetic_curated()


@pytest.fixture(scope="module")
def splits(curated: pd.DataFrame) -> pd.DataFrame:
    return make_splits(curated, k=5, val_fraction=0.15, seed=0)


def test_layout_and_every_image_tested_exactly_once(
    curated: pd.DataFrame, splits: pd.DataFrame
) -> None:
    assert list(splits.columns) == ["id", "fold", "split"]
    assert len(splits) == 5 * len(curated)
    assert sorted(splits["fold"].unique()) == [0, 1, 2, 3, 4]
    assert (splits.groupby("id")["fold"].nunique() == 5).all()
    assert set(splits["split"]) == {"train", "val", "test"}
    tested = splits[splits["split"] == "test"]
    assert sorted(tested["id"]) == sorted(curated["id"])


@pytest.mark.parametrize("key", ["patient_id", "duplicate_group"])
def test_no_group_crosses_splits(curated: pd.DataFrame, splits: pd.DataFrame, key: str) -> None:
    merged = splits.merge(curated[["id", key]], on="id").dropna(subset=[key])
    per_group = merged.groupby(["fold", key])["split"].nunique()
    assert (per_group == 1).all()
    assert merged.groupby(key)["id"].nunique().max() > 1  # there are groups to keep together


def test_class_proportions_and_val_size(curated: pd.DataFrame, splits: pd.DataFrame) -> None:
    merged = splits.merge(curated[["id", "label"]], on="id")
    for fold, part in merged.groupby("fold"):
        share = part.groupby("split")["id"].count() / len(curated)
        assert 0.1 < share["val"] < 0.22, fold
        test = part[part["split"] == "test"]["label"].value_counts(normalize=True)
        for label, expected in curated["label"].value_counts(normalize=True).items():
            assert abs(test[label] - expected) < 0.08, (fold, label)


def test_deterministic_and_independent_of_row_order(curated: pd.DataFrame) -> None:
    one = make_splits(curated, 4, 0.2, seed=3)
    shuffled = curated.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(one, make_splits(shuffled, 4, 0.2, seed=3))
    assert not one.equals(make_splits(curated, 4, 0.2, seed=4))


def test_leakage_groups_join_patients_through_duplicates() -> None:
    table = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", None, None, "p3"],
            "duplicate_group": pd.array([pd.NA, 0, 0, pd.NA, 1, 1], dtype="Int64"),
        }
    )
    assert leakage_groups(table).tolist() == [0, 0, 0, 1, 2, 2]
    assert leakage_groups(table[["patient_id"]]).tolist() == [0, 0, 1, 2, 3, 4]


def test_k_larger_than_the_groups_of_a_class_names_the_config_key() -> None:
    curated = synthetic_curated(n=30)
    rare = curated.index[curated["label"] == "normal"][:3]
    curated = curated[(curated["label"] != "normal") | curated.index.isin(rare)]
    with pytest.raises(MeddapError, match="folds.k"):
        make_splits(curated.assign(patient_id=None), k=4, val_fraction=0.15, seed=0)
    with pytest.raises(MeddapError, match="folds.val_fraction"):
        make_splits(curated, k=2, val_fraction=0.5, seed=0)


def test_job_takes_duplicate_groups_from_the_duplicates_table(tmp_path: Path) -> None:
    curated = synthetic_curated(n=60).drop(columns="duplicate_group").assign(patient_id=None)
    pairs = [("img_001", "img_040"), ("img_007", "img_033"), ("img_033", "img_050")]
    duplicates = pd.DataFrame(
        {
            "id_a": [a for a, _ in pairs],
            "id_b": [b for _, b in pairs],
            "score": 0.9,
            "accepted": True,
            "same_label": True,
            "mask_iou": np.nan,
            "group": [0, 1, 1],
        }
    )
    curated.to_parquet(tmp_path / "curated.parquet", index=False)
    duplicates.to_parquet(tmp_path / "duplicates.parquet", index=False)
    out = tmp_path / "splits.parquet"
    split_folds(
        curated=str(tmp_path / "curated.parquet"),
        duplicates=str(tmp_path / "duplicates.parquet"),
        splits=str(out),
        folds=Folds(source="own", k=3, val_fraction=0.2, seed=0),
        layout="busi",
    )
    splits = pd.read_parquet(out).set_index(["fold", "id"])["split"]
    for fold in range(3):
        assert splits[fold]["img_001"] == splits[fold]["img_040"]
        assert splits[fold]["img_007"] == splits[fold]["img_033"] == splits[fold]["img_050"]


def test_tiny_sets_still_get_a_val_split() -> None:
    """12 images (the curated real BUSI sample): every class of a fold's remainder is smaller
    than the val splitter's nominal n_splits, which must shrink rather than fail."""
    labels = ["benign"] * 5 + ["malignant"] * 3 + ["normal"] * 4
    curated = pd.DataFrame({"id": [f"i{n:02d}" for n in range(12)], "label": labels})
    splits = make_splits(curated, k=3, val_fraction=0.15, seed=0)
    assert set(splits.split) == {"train", "val", "test"}
    assert (splits.groupby("fold").split.apply(lambda s: (s == "val").sum()) > 0).all()


BUS_BRA = Path(__file__).resolve().parents[3] / "shared" / "data" / "busbra-subset"


def _bus_bra_curated() -> pd.DataFrame:
    """The BUS-BRA subset as ingest reads it (id, label, Case as patient), without its images."""
    table = pd.read_csv(BUS_BRA / "bus_data.csv", dtype=str)
    return pd.DataFrame(
        {"id": table["ID"].map(slug), "label": table["Pathology"], "patient_id": table["Case"]}
    )


def _split_release(
    tmp_path: Path, curated: pd.DataFrame, duplicates: pd.DataFrame, k: int
) -> pd.DataFrame:
    curated.to_parquet(tmp_path / "curated.parquet", index=False)
    duplicates.to_parquet(tmp_path / "duplicates.parquet", index=False)
    split_folds(
        curated=str(tmp_path / "curated.parquet"),
        duplicates=str(tmp_path / "duplicates.parquet"),
        splits=str(tmp_path / "splits.parquet"),
        folds=Folds(source="release", k=k, val_fraction=0.15, seed=0),
        layout="bus_bra",
        release=[str(BUS_BRA), "source.json"],
    )
    return pd.read_parquet(tmp_path / "splits.parquet")


NO_DUPLICATES = pd.DataFrame(
    {"id_a": [], "id_b": [], "accepted": pd.Series([], dtype=bool), "group": []}
)


@pytest.mark.parametrize("k", [5, 10])
def test_release_folds_test_as_bus_bra_does(tmp_path: Path, k: int) -> None:
    curated = _bus_bra_curated()
    splits = _split_release(tmp_path, curated, NO_DUPLICATES, k)
    official = pd.read_csv(BUS_BRA / f"{k}-fold-cv.csv", dtype=str)
    tested = splits[splits["split"] == "test"].set_index("id")["fold"]
    assert tested.sort_index().to_dict() == dict(
        zip(official["ID"].map(slug), official["kFold"].astype(int) - 1, strict=True)
    )
    patient = splits["id"].map(curated.set_index("id")["patient_id"])
    assert splits.groupby(["fold", patient])["split"].nunique().eq(1).all()  # val too
    val = (splits["split"] == "val").groupby(splits["fold"]).mean()
    assert val.between(0.08, 0.22).all()


def test_release_folds_refuse_a_duplicate_group_across_test_folds(tmp_path: Path) -> None:
    curated = _bus_bra_curated()  # bus_0002_l is in test fold 5, bus_0006_s in fold 4
    pair = {"id_a": ["bus_0002_l"], "id_b": ["bus_0006_s"], "accepted": [True], "group": [0]}
    with pytest.raises(MeddapError, match=r"folds\.source: the release puts images bus_0002_l, "):
        _split_release(tmp_path, curated, pd.DataFrame(pair), 5)


def test_release_folds_need_every_image(tmp_path: Path) -> None:
    curated = pd.concat([_bus_bra_curated(), pd.DataFrame([{"id": "extra", "label": "benign"}])])
    with pytest.raises(MeddapError, match=r"folds have no row for image extra"):
        _split_release(tmp_path, curated, NO_DUPLICATES, 5)
