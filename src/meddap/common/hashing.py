"""Content hashes of files and folders (provenance, audit, fingerprints)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SIDECAR_SUFFIX = ".prov.json"
SNAKEMAKE_MARKER = ".snakemake_timestamp"  # touched by Snakemake in directory outputs after a job


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bookkeeping(path: Path) -> bool:
    return path.name.endswith(SIDECAR_SUFFIX) or path.name == SNAKEMAKE_MARKER


def path_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a directory's sorted (relative path, file hash) listing."""
    p = Path(path)
    if not p.is_dir():
        return file_sha256(p)
    digest = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file() and not _bookkeeping(q)):
        digest.update(f"{f.relative_to(p).as_posix()}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()
