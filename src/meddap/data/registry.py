"""Dataset registry entries: where a dataset's files come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meddap.common.errors import MeddapError

SourceKind = Literal["path_dir", "path_archive", "url", "kaggle", "phantom"]
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(path: str | Path) -> bool:
    """Whether `path` names an archive meddap can extract."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def source_kind(name: str, entry: dict[str, Any]) -> SourceKind:
    """How dataset `name` is obtained: `path` wins over `phantom`, `url` and `kaggle`."""
    if "path" in entry:
        return "path_archive" if is_archive(entry["path"]) else "path_dir"
    for kind in ("phantom", "url", "kaggle"):
        if kind in entry:
            return kind  # type: ignore[return-value]
    raise MeddapError(
        f"config key 'datasets.{name}' has no source: set 'path' (a folder or archive), "
        "'url' (with 'sha256') or 'kaggle'"
    )


def check_local_path(name: str, entry: dict[str, Any]) -> None:
    """Stop early when a configured `path` does not exist."""
    if "path" in entry and not Path(entry["path"]).exists():
        raise MeddapError(
            f"config key 'datasets.{name}.path': {entry['path']} does not exist "
            "(expected a dataset folder or archive)"
        )


def local_dataset_dir(entry: dict[str, Any]) -> Path | None:
    """The user's dataset folder when `path` names a folder, else None (the workflow fetches)."""
    path = entry.get("path")
    return Path(path) if path and not is_archive(path) else None
