"""Provenance records: what a job read, did and wrote, stored beside every output."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from meddap import __version__
from meddap.common.atomic import write_json
from meddap.common.hashing import SIDECAR_SUFFIX, file_sha256, listing_sha256, tree_hashes

PACKAGES = (
    "torch", "torchvision", "diffusers", "peft", "transformers", "accelerate", "snakemake",
    "monai", "numpy", "pandas", "scikit-image", "scikit-learn", "pillow",
)  # fmt: skip


def sidecar(path: str | os.PathLike[str]) -> Path:
    """The provenance file that belongs to output `path`."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


@cache
def code_version() -> dict[str, Any]:
    """meddap version, git commit (when run from a checkout) and a hash of the package source."""
    src = Path(__file__).parents[1]  # the meddap package
    digest = hashlib.sha256()
    for f in sorted(src.rglob("*.py")):
        digest.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes())
    return {"meddap": __version__, "source_sha256": digest.hexdigest(), **_git_state(src)}


def _git_state(where: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    return {
        "git_commit": commit or None,
        "git_dirty": bool(git("status", "--porcelain", "--", ".")),
    }


@cache
def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_name() -> str:
    """The accelerator this process computes on ('cpu' when none)."""
    if "torch" not in sys.modules:
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def hashed(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A file's path and sha256; a folder's also lists each file's hash, for audit to name one."""
    if not Path(path).is_dir():
        return {"path": str(path), "sha256": file_sha256(path)}
    files = tree_hashes(path)
    return {"path": str(path), "sha256": listing_sha256(files), "files": files}


def _hashed(paths: Iterable[str]) -> list[dict[str, Any]]:
    return [hashed(p) for p in paths]


def build_record(
    *,
    rule: str,
    inputs: Mapping[str, Iterable[str]],
    outputs: Iterable[str],
    params: Mapping[str, Any],
    wildcards: Mapping[str, str],
    started: datetime,
    ended: datetime,
    process: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to audit one job: hashed inputs and outputs, params and environment.

    `process` is the job's accounting (`meddap.run.usage` when its work started and ended),
    for the run's ledger and the default-run benchmark.
    """
    return {
        "rule": rule,
        "wildcards": dict(wildcards),
        "params": dict(params),
        "inputs": {name: _hashed(paths) for name, paths in inputs.items()},
        "outputs": _hashed(outputs),
        "code": code_version(),
        "packages": package_versions(),
        "device": device_name(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # GPUs SLURM allotted
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "process": dict(process or {}),
    }


def write_records(record: Mapping[str, Any]) -> None:
    """Store `record` beside each of its outputs."""
    for out in record["outputs"]:
        write_json(record, sidecar(out["path"]))


def remove_records(outputs: Iterable[str]) -> None:
    """Remove the records of `outputs` left by an earlier run: a job that fails now must leave
    none beside the outputs Snakemake then removes."""
    for path in outputs:
        sidecar(path).unlink(missing_ok=True)


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)
