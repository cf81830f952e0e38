"""Shared fixtures: the real BUSI sample beside the checkout, the repo root."""

from __future__ import annotations

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
