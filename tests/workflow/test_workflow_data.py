"""The data stage through real Snakemake: phantom default, real BUSI sample by path, bad input.

The BUSI runs use .test/busi-sample.yaml with the sample's (or a scratch copy's) absolute path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from meddap.common import hashing
from meddap.run import provenance
from tests.snakemake_runner import planned_jobs, snakemake

pytestmark = pytest.mark.slow


def _groups(duplicates: pd.DataFrame) -> set[frozenset[str]]:
    """The accepted duplicate groups (rejected pairs are in the table too, without a group)."""
    members: dict[int, set[str]] = {}
    for row in duplicates[duplicates.accepted].itertuples():
        members.setdefault(row.group, set()).update((row.id_a, row.id_b))
    return {frozenset(m) for m in members.values()}


def _check_splits(splits: pd.DataFrame, curated: pd.DataFrame, k: int) -> None:
    assert sorted(splits.fold.unique()) == list(range(k))
    tests = splits[splits.split == "test"]
    assert sorted(tests.id) == sorted(curated.id)  # every image in exactly one test split
    groups = curated.set_index("id").duplicate_group
    for _, fold in splits.groupby("fold"):
        by_group = fold.assign(group=fold.id.map(groups)).dropna(subset=["group"])
        assert (by_group.groupby("group").split.nunique() == 1).all()


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("phantom")
    run = snakemake(work, "results/data/phantom/splits.parquet")
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_phantom_data_stage_finds_planted_duplicates(phantom_run: Path) -> None:
    data = phantom_run / "results" / "data" / "phantom"
    manifest = pd.read_parquet(data / "manifest.parquet")
    truth = pd.read_csv(phantom_run / "results" / "raw" / "phantom" / "duplicates_truth.csv")
    by_source = manifest.set_index(manifest.image_path.map(lambda p: Path(p).name)).id
    planted = {
        frozenset(by_source[Path(i).name] for i in g.image) for _, g in truth.groupby("group")
    }
    assert _groups(pd.read_parquet(data / "duplicates.parquet")) == planted
    curated = pd.read_parquet(data / "curated.parquet")
    dropped = set().union(*planted)
    assert set(curated.id) == set(manifest.id) - dropped
    _check_splits(pd.read_parquet(data / "splits.parquet"), curated, k=3)


def test_phantom_outputs_carry_provenance_and_rerun_is_a_no_op(phantom_run: Path) -> None:
    splits = phantom_run / "results" / "data" / "phantom" / "splits.parquet"
    record = json.loads(provenance.sidecar(splits).read_text())
    assert record["rule"] == "split_folds" and record["params"]["folds"]["k"] == 3
    assert record["outputs"][0]["sha256"] == hashing.file_sha256(splits)
    curated = record["inputs"]["curated"][0]
    assert curated["sha256"] == hashing.file_sha256(phantom_run / curated["path"])
    assert planned_jobs(phantom_run, "results/data/phantom/splits.parquet") == {}


def test_busi_sample_by_path(tmp_path: Path, busi_sample: Path) -> None:
    config = {"datasets": {"busi": {"path": str(busi_sample)}}}  # absolute: runs in tmp_path
    run = snakemake(tmp_path, "results/data/busi/splits.parquet", case="busi-sample", config=config)
    assert run.returncode == 0, run.stderr[-3000:]
    data = tmp_path / "results" / "data" / "busi"
    assert len(pd.read_parquet(data / "manifest.parquet")) == 23
    assert _groups(pd.read_parquet(data / "duplicates.parquet")) == {
        frozenset({"benign_139", "benign_157", "benign_65", "benign_99"}),
        frozenset({"benign_131", "benign_42", "malignant_51"}),
        frozenset({"benign_406", "malignant_94"}),
        frozenset({"benign_433", "malignant_145"}),
    }
    curated = pd.read_parquet(data / "curated.parquet")
    assert len(curated) == 12  # drop_all removes the 11 members of the 4 groups
    _check_splits(pd.read_parquet(data / "splits.parquet"), curated, k=3)


def test_corrupt_image_stops_with_its_name(tmp_path: Path, busi_sample: Path) -> None:
    folder = tmp_path / "busi"
    shutil.copytree(busi_sample, folder)
    bad = folder / "benign" / "benign (2).png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    config = {"datasets": {"busi": {"path": str(folder)}}}
    run = snakemake(
        tmp_path, "results/data/busi/manifest.parquet", case="busi-sample", config=config
    )
    assert run.returncode != 0
    assert "benign (2).png" in run.stderr
    assert not (tmp_path / "results" / "data" / "busi" / "manifest.parquet").exists()
