"""Content hashes of files and folders (provenance, audit, source fingerprints).

File hashes are memoised per process by (path, size, mtime in ns), so a folder that one job
fingerprints, reads and records is hashed once; `remember` seeds the memo from a stored cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SIDECAR_SUFFIX = ".prov.json"
SNAKEMAKE_MARKER = ".snakemake_timestamp"  # touched by Snakemake in directory outputs after a job

_MEMO: dict[tuple[str, int, int], str] = {}


def stat_key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """(absolute path, size, mtime in ns): what must be unchanged for a stored hash to hold."""
    p = os.path.abspath(path)
    st = os.stat(p)
    return p, st.st_size, st.st_mtime_ns


def remember(key: tuple[str, int, int], sha256: str) -> None:
    """Seed the memo with a hash computed earlier for the file state `key`."""
    _MEMO[key] = sha256


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (memoised while the file's size and mtime are unchanged)."""
    key = stat_key(path)
    if key not in _MEMO:
        _MEMO[key] = _read_sha256(path)
    return _MEMO[key]


def _read_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bookkeeping(path: Path) -> bool:
    return path.name.endswith(SIDECAR_SUFFIX) or path.name == SNAKEMAKE_MARKER


def tree_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every file below `folder` (sorted), without provenance sidecars and Snakemake markers."""
    root = Path(folder)
    return sorted(q for q in root.rglob("*") if q.is_file() and not _bookkeeping(q))


def tree_hashes(folder: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every file below `folder`, by POSIX path relative to it (sorted)."""
    root = Path(folder)
    return {f.relative_to(root).as_posix(): file_sha256(f) for f in tree_files(root)}


def listing_sha256(files: dict[str, str]) -> str:
    """One digest of a folder's (relative path, file hash) listing."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def path_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a directory's sorted (relative path, file hash) listing."""
    p = Path(path)
    return listing_sha256(tree_hashes(p)) if p.is_dir() else file_sha256(p)
