"""Shared fixtures: the real BUSI sample beside the checkout, the repo root, a small phantom
dataset split into folds, a nested synthetic set of its fold 0, and a training run killed
mid-way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BUSI_SAMPLE = REPO.parent / "shared" / "data" / "busi-sample" / "Dataset_BUSI_with_GT"
WORKFLOW_TESTS = Path(__file__).resolve().parent / "workflow"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of tests/workflow/ runs real Snakemake: it is `slow` without marking each."""
    for item in items:
        if item.path.is_relative_to(WORKFLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def busi_sample() -> Path:
    """The 23 real BUSI images in ../shared (read in place, never copied into the repo)."""
    if not BUSI_SAMPLE.is_dir():
        pytest.fail(f"the real BUSI sample is missing: expected {BUSI_SAMPLE}")
    return BUSI_SAMPLE


def _cluster_nodes() -> str:
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return done.stdout if done.returncode == 0 else ""


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment in which `snakemake --profile slurm` finds a profile for the local cluster.

    The profile is written by `meddap slurm-profile` into a scratch XDG_CONFIG_HOME, the way a
    user writes theirs into ~/.config; the cluster is the one `cluster/slurm-up.sh` starts.
    """
    if not any(state in _cluster_nodes() for state in ("idle", "mix", "alloc")):
        pytest.fail("no SLURM cluster answers sinfo: start one with `bash cluster/slurm-up.sh`")
    env = {"XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg"))}
    args = ["slurm-profile", "--status-command", "squeue", "--init-seconds", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "meddap.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return env


# --- a phantom dataset and a synthetic set of it ----------------------------------------------

PHANTOM = {"image_size": 64, "duplicates": 0, "conflicting": 0, "second_mask_fraction": 0.0}
PHANTOM_PATIENTS, PHANTOM_SEED = 30, 0
PHANTOM_FOLDS = {"k": 3, "val_fraction": 0.2, "seed": 0}


@dataclass(frozen=True)
class PhantomFold:
    """A phantom dataset (BUSI layout, 64 px, no duplicates) with its manifest and fold splits."""

    root: Path  # the dataset folder (benign/, malignant/, normal/)
    manifest: Path  # ingest's manifest: id, label, image_path, mask_path, patient_id, ...
    splits: Path  # id, fold, split for PHANTOM_FOLDS["k"] folds
    masks: Path  # the merged masks the manifest's mask_path points at

    def rows(self, split: str, fold: int = 0) -> pd.DataFrame:
        """Manifest rows of one split of one fold, sorted by id (as the jobs read them)."""
        table = pd.read_parquet(self.splits)
        ids = sorted(table[(table.fold == fold) & (table.split == split)].id)
        return pd.read_parquet(self.manifest).set_index("id").loc[ids].reset_index()


@pytest.fixture(scope="session")
def phantom_fold(tmp_path_factory: pytest.TempPathFactory) -> PhantomFold:
    """60 phantom images of 30 patients in 3 folds (fold 0: 26 train, 14 val, 20 test).

    Shared by the whole session: read it, never write into it.
    """
    from meddap.data.folds import make_splits
    from meddap.data.ingest import build_manifest
    from meddap.data.phantom import generate_phantom

    base = tmp_path_factory.mktemp("phantom_fold")
    root, masks, manifest = base / "phantom", base / "masks", base / "manifest.parquet"
    generate_phantom(root, patients=PHANTOM_PATIENTS, seed=PHANTOM_SEED, **PHANTOM)
    build_manifest(root, "phantom", "busi", masks).to_parquet(manifest)
    splits = base / "splits.parquet"
    make_splits(pd.read_parquet(manifest), **PHANTOM_FOLDS).to_parquet(splits)
    return PhantomFold(root=root, manifest=manifest, splits=splits, masks=masks)


@pytest.fixture(scope="session")
def synthetic_set(phantom_fold: PhantomFold, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nested synthetic set of fold 0 (rank 2, adjective 'none') as synthesize writes one.

    Image k is train image k (by id) flipped left-right, so the set is the 100% ratio; columns
    id, index, label, image_path, fold, rank, adjective; rows stored shuffled.
    """
    from PIL import Image

    root = tmp_path_factory.mktemp("synthetic_set")
    train = phantom_fold.rows("train")
    (root / "images").mkdir()
    rows = []
    for index, (label, source) in enumerate(zip(train.label, train.image_path, strict=True)):
        path = root / "images" / f"{index:06d}.png"
        Image.open(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
        rows.append({"id": f"s{index}", "index": index, "label": label, "image_path": str(path)})
    frame = pd.DataFrame(rows).assign(fold=0, rank=2, adjective="none")
    frame.sample(frac=1, random_state=0).to_parquet(root / "manifest.parquet")
    return root / "manifest.parquet"


class Killed(Exception):
    """Stands in for a SIGKILL in the middle of training."""


@contextmanager
def killed_after(validations: int) -> Iterator[None]:
    """Training inside the block dies (`Killed`) after `validations` validations."""
    from meddap.common import training

    train_steps, calls = training.train_steps, []

    def dying(*args: object) -> float:
        calls.append(args)
        if len(calls) > validations:
            raise Killed
        return train_steps(*args)

    with pytest.MonkeyPatch.context() as monkeypatch, pytest.raises(Killed):
        monkeypatch.setattr(training, "train_steps", dying)
        yield
