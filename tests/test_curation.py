"""Duplicate detection on the real BUSI sample, connected groups, mask IoU and the policies."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from meddap.common.errors import MeddapError
from meddap.common.images import load_gray
from meddap.common.settings import Curation, Similarity
from meddap.data.curation import (
    POLICIES,
    apply_policy,
    curate,
    find_duplicates,
    find_duplicates_job,
)
from meddap.data.ssim import pairwise_ssim

KNOWN_GROUPS = [
    {"benign_131", "benign_42", "malignant_51"},
    {"benign_139", "benign_157", "benign_65", "benign_99"},
    {"benign_406", "malignant_94"},
    {"benign_433", "malignant_145"},
]


@pytest.fixture(scope="module")
def manifest(busi_sample: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(busi_sample.glob("*/*.png")):
        name = re.fullmatch(r"(\w+) \((\d+)\)\.png", path.name)
        if name:
            rows.append(
                {
                    "id": f"{name[1]}_{name[2]}",
                    "dataset": "busi",
                    "label": name[1],
                    "image_path": str(path),
                    "mask_path": str(path.with_name(f"{path.stem}_mask.png")),
                    "patient_id": None,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    return find_duplicates(manifest, image_size=128, threshold=0.45)


def groups_of(duplicates: pd.DataFrame) -> list[set[str]]:
    return [set(g["id_a"]) | set(g["id_b"]) for _, g in duplicates.groupby("group", sort=True)]


def test_finds_exactly_the_known_duplicate_groups(duplicates: pd.DataFrame) -> None:
    assert groups_of(duplicates) == KNOWN_GROUPS  # numbered by smallest member id
    assert len(duplicates) == 3 + 6 + 1 + 1  # every pair inside the triplet and quadruplet


def test_threshold_separates_duplicates_from_the_rest(manifest: pd.DataFrame) -> None:
    ssim = pairwise_ssim(load_gray(manifest["image_path"].tolist(), 128))
    group = {i: g for g, members in enumerate(KNOWN_GROUPS) for i in members}
    ids = manifest["id"].tolist()
    same = np.array([[group.get(a, a) == group.get(b, b) for b in ids] for a in ids])
    assert ssim[same & ~np.eye(len(ids), dtype=bool)].min() > 0.6
    assert ssim[~same].max() < 0.3


def test_table_layout(duplicates: pd.DataFrame) -> None:
    assert list(duplicates.columns) == ["id_a", "id_b", "ssim", "same_label", "mask_iou", "group"]
    assert (duplicates["id_a"] < duplicates["id_b"]).all()
    assert duplicates.equals(duplicates.sort_values(["group", "id_a", "id_b"], ignore_index=True))
    assert duplicates["same_label"].dtype == bool and duplicates["group"].dtype == np.int64
    assert (duplicates["ssim"] >= 0.45).all()
    pair = duplicates.set_index(["id_a", "id_b"])
    assert pair.loc[("benign_433", "malignant_145"), "ssim"] == pytest.approx(1.0)
    assert not pair.loc[("benign_433", "malignant_145"), "same_label"]
    assert pair.loc[("benign_139", "benign_157"), "same_label"]


def test_mask_iou_after_nearest_resize(manifest: pd.DataFrame, duplicates: pd.DataFrame) -> None:
    paths = manifest.set_index("id")["mask_path"]

    def mask(name: str) -> np.ndarray:
        with Image.open(paths[name]) as img:
            return np.asarray(img.convert("L").resize((128, 128), Image.Resampling.NEAREST)) > 0

    a, b = mask("benign_42"), mask("malignant_51")
    want = (a & b).sum() / (a | b).sum()
    got = duplicates.set_index(["id_a", "id_b"]).loc[("benign_42", "malignant_51"), "mask_iou"]
    assert got == pytest.approx(want)
    assert duplicates["mask_iou"].between(0, 1).all()


def write_image(path: Path, array: np.ndarray) -> str:
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def synthetic_manifest(tmp_path: Path) -> pd.DataFrame:
    """x0 ~ x1 ~ x2 chain (x0 and x2 unrelated), x3 unrelated; masks: x0, x1 empty; x2 none."""
    rng = np.random.default_rng(0)
    x0, x2, x3 = 128 + 600 * gaussian_filter(rng.normal(size=(3, 48, 48)), sigma=(0, 2, 2))
    images = [x0, (x0 + x2) / 2, x2, x3]
    empty = write_image(tmp_path / "empty_mask.png", np.zeros((48, 48)))
    full = write_image(tmp_path / "full_mask.png", np.full((48, 48), 255))
    return pd.DataFrame(
        {
            "id": ["x0", "x1", "x2", "x3"],
            "label": ["benign", "benign", "malignant", "normal"],
            "image_path": [write_image(tmp_path / f"x{k}.png", x) for k, x in enumerate(images)],
            "mask_path": [empty, empty, None, full],
        }
    )


def test_groups_are_connected_components_of_candidate_pairs(tmp_path: Path) -> None:
    manifest = synthetic_manifest(tmp_path)
    ssim = pairwise_ssim(load_gray(manifest["image_path"].tolist(), 48))
    threshold = min(ssim[0, 1], ssim[1, 2]) - 1e-6
    assert ssim[0, 2] < threshold and ssim[:3, 3].max() < threshold
    found = find_duplicates(manifest, 48, threshold)
    assert list(zip(found["id_a"], found["id_b"], strict=True)) == [("x0", "x1"), ("x1", "x2")]
    assert found["group"].tolist() == [0, 0]
    assert found["same_label"].tolist() == [True, False]
    assert found["mask_iou"].isna().all()  # both masks empty; one mask missing


def test_no_candidates_gives_an_empty_table(tmp_path: Path) -> None:
    found = find_duplicates(synthetic_manifest(tmp_path), 48, threshold=1.0)
    assert found.empty
    assert list(found.columns) == ["id_a", "id_b", "ssim", "same_label", "mask_iou", "group"]


def test_policies(manifest: pd.DataFrame, duplicates: pd.DataFrame) -> None:
    members = set().union(*KNOWN_GROUPS)
    kept = {p: apply_policy(manifest, duplicates, p) for p in POLICIES}
    assert {p: len(t) for p, t in kept.items()} == {
        "none": 23,
        "drop_all": 12,
        "keep_one_consistent": 13,
    }
    assert not members & set(kept["drop_all"]["id"])
    # only the all-benign quadruplet keeps one member: its smallest id
    assert members & set(kept["keep_one_consistent"]["id"]) == {"benign_139"}
    none = kept["none"].set_index("id")["duplicate_group"]
    assert none.dtype == "Int64"
    assert none[["benign_131", "benign_139", "benign_406", "benign_433"]].tolist() == [0, 1, 2, 3]
    assert none.isna().sum() == 23 - len(members)
    assert list(kept["none"].columns) == [*manifest.columns, "duplicate_group"]


def test_unknown_policy_names_the_config_key(
    manifest: pd.DataFrame, duplicates: pd.DataFrame
) -> None:
    with pytest.raises(MeddapError, match="curation.policy"):
        apply_policy(manifest, duplicates, "keep_all")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    manifest = synthetic_manifest(tmp_path)
    Path(manifest.loc[2, "image_path"]).write_bytes(b"truncated")
    with pytest.raises(MeddapError, match="x2.png"):
        find_duplicates(manifest, 48, 0.45)


def test_jobs_write_the_tables_and_log_what_curation_did(
    tmp_path: Path, manifest: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meddap.data.curation")
    manifest.to_parquet(tmp_path / "manifest.parquet", index=False)
    paths = {n: str(tmp_path / f"{n}.parquet") for n in ("manifest", "duplicates", "curated")}
    similarity = Similarity(image_size=128, ssim_threshold=0.45)
    find_duplicates_job(
        manifest=paths["manifest"], duplicates=paths["duplicates"], similarity=similarity
    )
    curate(**paths, curation=Curation(policy="drop_all"))
    assert groups_of(pd.read_parquet(paths["duplicates"])) == KNOWN_GROUPS
    curated = pd.read_parquet(paths["curated"])
    assert len(curated) == 12 and curated["duplicate_group"].isna().all()
    n_groups = len(KNOWN_GROUPS)
    assert f"{len(manifest)} images: " in caplog.text and f"in {n_groups} groups" in caplog.text
    removed = manifest[~manifest.id.isin(curated.id)].label.value_counts().sort_index().to_dict()
    assert f"policy drop_all keeps 12 of {len(manifest)} images; removed per class: {removed}" in (
        caplog.text
    )


def test_job_names_a_manifest_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    pd.DataFrame({"id": ["a"], "label": ["benign"]}).to_parquet(path)
    with pytest.raises(MeddapError, match="manifest.parquet lacks .*image_path"):
        find_duplicates_job(
            manifest=str(path),
            duplicates=str(tmp_path / "d.parquet"),
            similarity=Similarity(image_size=32, ssim_threshold=0.5),
        )
