"""Shared fixtures: the real BUSI sample beside the checkout, the repo root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSI_SAMPLE = REPO.parent / "shared" / "data" / "busi-sample" / "Dataset_BUSI_with_GT"


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
