"""Content fingerprints of a dataset's source: every file's size and sha256.

A `path:` folder or archive belongs to the user, so Snakemake's mtime check cannot see an
image replaced in place or moved between class folders. When the DAG is built,
`content_digest` hashes the source (only files whose size or mtime changed since the last
build: `results/cache/sources/{dataset}.json` keeps the hashes) and rules take the digest as a
param, so changed content, and only changed content, reruns what depends on it. The
`fingerprint_source` job stores the listing as `results/data/{dataset}/source.json`, the input of
ingest and of every job that reads the dataset's images.

Model folders (a local `diffusion.base_model`, a pretrained ControlNet) are fingerprinted the
same way, once per folder (`fingerprint_model`, `results/fingerprints/{part}.json`), and the
jobs that load a model record its fingerprint instead of re-hashing every file of it. Their
folders are inputs by content only, so a checkout that gives the same bytes new mtimes reruns
nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from meddap.common import paths
from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256, listing_sha256, remember, stat_key, tree_files
from meddap.data.registry import SourceKind, source_kind, user_path

log = logging.getLogger(__name__)


def _load_cache(file: Path) -> None:
    """Seed the hash memo from `file` (a missing or unreadable cache is only slower)."""
    try:
        entries = json.loads(file.read_text())
    except (OSError, ValueError):
        return
    for path, (size, mtime_ns, sha256) in entries.items():
        remember((path, size, mtime_ns), sha256)


def _save_cache(file: Path, files: list[Path]) -> None:
    entries = {}
    for f in files:
        path, size, mtime_ns = stat_key(f)
        entries[path] = [size, mtime_ns, file_sha256(f)]
    write_json(entries, file)


def _listing(root: Path, files: list[Path]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each of `files` (below folder `root`), by relative POSIX path."""
    return {
        f.relative_to(root).as_posix(): {"size": stat_key(f)[1], "sha256": file_sha256(f)}
        for f in files
    }


def _digest(listing: dict[str, dict[str, Any]]) -> str:
    return listing_sha256({name: item["sha256"] for name, item in listing.items()})


def content_digest(
    dataset: str, entry: dict[str, Any], kind: SourceKind, workdir: str | Path = "."
) -> str:
    """The digest of `dataset`'s `path:` folder or archive when its source is `kind`, else ''."""
    if source_kind(dataset, entry) != kind:
        return ""
    root = user_path(entry["path"])
    if not root.exists():
        raise MeddapError(f"config key 'datasets.{dataset}.path': {root} does not exist")
    return path_digest(root, Path(workdir) / paths.SOURCE_CACHE.format(dataset=dataset))


def path_digest(root: Path, cache: Path) -> str:
    """The content digest of folder or file `root`, re-hashing only what changed since `cache`
    (its stored hashes, updated) was written."""
    _load_cache(cache)
    files = tree_files(root) if root.is_dir() else [root]
    _save_cache(cache, files)
    return _digest(_listing(root, files)) if root.is_dir() else file_sha256(root)


def model_digest(folder: str, part: str, workdir: str | Path = ".") -> str:
    """The content digest of model folder `folder` (fingerprinted as `part`), '' for a hub id."""
    root = Path(folder)
    if not root.is_dir():
        return ""
    return path_digest(root, Path(workdir) / paths.MODEL_CACHE.format(part=part))


def _fingerprint(root: Path, cache: Path, content: str) -> dict[str, Any]:
    """Size and sha256 of every file of folder `root`, their digest; stops if the digest is not
    `content` (when given): the folder changed after the workflow was planned."""
    _load_cache(cache)
    listing = _listing(root, tree_files(root))
    digest = _digest(listing)
    if content and digest != content:
        raise MeddapError(
            f"folder {root} changed after the workflow was planned: run snakemake again"
        )
    size = sum(item["size"] for item in listing.values())
    log.info("%s: %d files, %.1f MB, sha256 %s", root, len(listing), size / 1e6, digest)
    return {"root": str(root.resolve()), "sha256": digest, "files": listing}


def shared_source(first: str, entry: dict[str, Any], second: str, other: dict[str, Any]) -> str:
    """What two datasets' sources share ('' if nothing): the same resolved `path`, `url`,
    `kaggle` reference or `phantom` parameters, or the same content (a `path` folder's digest,
    a `path` archive's or a `url` download's sha256); a copy elsewhere is the same data.

    Content is hashed only where both sides can have it (as planning does anyway)."""
    shared = _declared(first, entry) & _declared(second, other)
    kinds = {source_kind(first, entry), source_kind(second, other)}
    if not shared and kinds <= {"path_dir", "path_archive", "url"} and len(kinds - {"url"}) < 2:
        content = [_content(name, e) for name, e in ((first, entry), (second, other))]
        shared = set(content) if content[0] and content[0] == content[1] else set()
    return min(shared, default="")


def _declared(dataset: str, entry: dict[str, Any]) -> set[str]:
    kind = source_kind(dataset, entry)
    if kind in ("path_dir", "path_archive"):
        return {f"path {user_path(entry['path']).resolve()}"}
    if kind == "phantom":
        return {f"phantom {json.dumps(entry['phantom'], sort_keys=True)}"}
    return {f"{kind} {entry[kind]}"}


def _content(dataset: str, entry: dict[str, Any]) -> str:
    """The content digest of a `path` source, or a `url`'s declared sha256 ('' if none)."""
    kind = source_kind(dataset, entry)
    if kind == "url":
        return f"sha256 {entry['sha256']}" if "sha256" in entry else ""
    return f"sha256 {content_digest(dataset, entry, kind)}"


def fingerprint_source(*, raw: str, source: str, dataset: str, content: str) -> None:
    """Job: the size and sha256 of every file of dataset folder `raw`, as `source`.

    `content` is the folder's digest from when the DAG was built (the rerun trigger of a
    `path:` folder; '' for a folder the workflow fetched): a folder changed since then stops.
    """
    root = Path(raw)
    if not root.is_dir():
        raise MeddapError(f"dataset folder {root} of dataset {dataset!r} is not a folder")
    record = _fingerprint(root, Path(paths.SOURCE_CACHE.format(dataset=dataset)), content)
    write_json({"dataset": dataset, **record}, source)


def fingerprint_model(*, folder: str, fingerprint: str, part: str, content: str) -> None:
    """Job: the size and sha256 of every file of model folder `folder`, as `fingerprint`.

    `content` is the folder's digest from when the DAG was built; a folder changed since stops.
    """
    root = Path(folder)
    if not (root / "model_index.json").is_file() and not (root / "config.json").is_file():
        raise MeddapError(
            f"model folder {root} ({part}) holds neither model_index.json nor config.json"
        )
    record = _fingerprint(root, Path(paths.MODEL_CACHE.format(part=part)), content)
    write_json({"model": part, **record}, fingerprint)
