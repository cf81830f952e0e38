"""The whole data stage through real Snakemake on the 463-image BUS-BRA subset: portrait and
landscape images of four scanners ingest, curate and split by the release's official folds
(about 85 s on 2 shared CPU cores, most of it duplicate detection)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from meddap.data.curation import member_groups
from meddap.data.layouts import slug
from tests.snakemake_runner import REPO, snakemake

pytestmark = pytest.mark.slow
BUS_BRA = REPO.parent / "shared" / "data" / "busbra-subset"
TARGETS = ("results/data/bus_bra/curation.md", "results/data/bus_bra/splits.parquet")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("bus_bra")
    config = {"datasets": {"bus_bra": {"path": str(BUS_BRA)}}}
    started = time.monotonic()
    done = snakemake(workdir, *TARGETS, case="busbra-subset", config=config)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"data stage on the BUS-BRA subset: {time.monotonic() - started:.0f} s")
    return workdir / "results" / "data" / "bus_bra"


def test_every_image_ingests_portrait_and_landscape(run: Path) -> None:
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert len(manifest) == 463 and manifest["label"].value_counts().to_dict() == {
        "benign": 287,
        "malignant": 176,
    }
    assert (manifest["height"] > manifest["width"]).any()
    assert (manifest["width"] > manifest["height"]).any()
    assert pd.read_parquet(run / "mask_findings.parquet").empty  # every lesion has a mask
    for row in manifest.head(20).itertuples():
        with Image.open(row.mask_path) as mask:
            assert mask.size == (row.width, row.height)


def test_curation_removes_little_in_small_groups(run: Path) -> None:
    duplicates = pd.read_parquet(run / "duplicates.parquet")
    curated = pd.read_parquet(run / "curated.parquet")
    assert len(duplicates) > 463  # every image's candidates were aligned and scored
    assert 463 - len(curated) <= 0.01 * 463
    assert (member_groups(duplicates).value_counts() <= 4).all()
    report = (run / "curation.md").read_text()
    assert f"images: 463, kept: {len(curated)}" in report
    assert "Masks that contradict their labels: 0" in report


def test_splits_are_the_release_folds(run: Path) -> None:
    splits = pd.read_parquet(run / "splits.parquet")
    official = pd.read_csv(BUS_BRA / "5-fold-cv.csv", dtype=str)
    fold = dict(zip(official["ID"].map(slug), official["kFold"].astype(int) - 1, strict=True))
    tested = splits[splits["split"] == "test"]
    assert (tested["id"].map(fold) == tested["fold"]).all()
    patient = pd.read_parquet(run / "curated.parquet").set_index("id")["patient_id"]
    assert splits.groupby(["fold", splits["id"].map(patient)])["split"].nunique().eq(1).all()
