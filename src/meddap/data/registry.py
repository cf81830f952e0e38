"""Dataset registry entries: where a dataset's files come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meddap.common.errors import MeddapError

SourceKind = Literal["path_dir", "path_archive", "url", "kaggle", "phantom"]
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# Archive formats meddap cannot extract, named so that the error says what the file is.
UNSUPPORTED_ARCHIVES = (".rar", ".7z", ".zst", ".gz", ".bz2", ".xz", ".lz", ".lzma", ".cab", ".iso")


def is_archive(path: str | Path) -> bool:
    """Whether `path` names an archive meddap can extract."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def user_path(value: str | Path) -> Path:
    """A configured `path` with a leading `~` (or `~user`) expanded to the home folder."""
    return Path(value).expanduser()


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
    """Stop early when a configured `path` is missing or is neither a folder nor an archive."""
    if "path" not in entry:
        return
    path = user_path(entry["path"])
    if not is_archive(path) and path.name.lower().endswith(UNSUPPORTED_ARCHIVES):
        problem = "is an unsupported archive format"
    elif not path.exists():
        problem = "does not exist"
    elif path.is_file() and not is_archive(path):
        problem = "is a file but not an archive"
    else:
        return
    raise MeddapError(
        f"config key 'datasets.{name}.path': {path} {problem} (expected a dataset folder or an "
        f"archive ending in {', '.join(ARCHIVE_SUFFIXES)})"
    )


def local_dataset_dir(entry: dict[str, Any]) -> Path | None:
    """The user's dataset folder when `path` names a folder, else None (the workflow fetches)."""
    path = entry.get("path")
    return user_path(path) if path and not is_archive(path) else None
