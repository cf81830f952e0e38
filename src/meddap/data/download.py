"""Obtain a dataset: checksum-verified downloads (pooch), Kaggle, archives, the phantom."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pooch
import requests
from pooch.downloaders import choose_downloader

from meddap.common.atomic import atomic_dir
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.settings import Archives
from meddap.data.archive import safe_extract
from meddap.data.registry import is_archive, source_kind

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_KAGGLE_REF = re.compile(r"^[\w.-]+/[\w.-]+$")


def _copy_local(url: str, output_file: str, _pooch: Any = None) -> None:
    """A pooch downloader for file:// URLs (pooch knows only http(s), ftp, sftp and doi)."""
    source = Path(url2pathname(urlparse(url).path))
    if not source.is_file():
        raise MeddapError(f"file {source} named by URL {url} does not exist")
    shutil.copyfile(source, output_file)


class _HashingDownloader:
    """Run the downloader for `url` and remember the sha256 of what it fetched."""

    def __init__(self, url: str) -> None:
        self.inner = _copy_local if url.startswith("file:") else _choose(url)
        self.sha256: str | None = None

    def __call__(self, url: str, output_file: str, pooch_obj: Any) -> None:
        self.inner(url, output_file, pooch_obj)
        self.sha256 = file_sha256(output_file)


def _choose(url: str) -> Any:
    try:
        return choose_downloader(url, progressbar=True)
    except ValueError as err:
        raise MeddapError(
            f"URL {url} has an unsupported scheme (expected https, ftp or file)"
        ) from err


def _expected_hash(sha256: str | None, key: str) -> str | None:
    if sha256 is None:
        return None
    match = _SHA256.match(sha256.strip())
    if not match:
        raise MeddapError(f"config key '{key}': {sha256!r} is not a sha256 (64 hex digits)")
    return match.group(1).lower()


def url_file_name(url: str) -> str:
    """The file name a URL's path ends with."""
    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise MeddapError(f"URL {url} does not end with a file name")
    return name


def download(url: str, dest_dir: Path, sha256: str | None, key: str) -> Path:
    """Download `url` into `dest_dir` (cached, verified against `sha256`), return the file.

    pooch downloads to a temporary file and moves it into place only when the hash matches;
    a file already in `dest_dir` with the expected hash is reused instead of re-downloaded.
    pooch has no file:// support, so those URLs are copied locally, then verified the same way.
    `key` is the config key of the checksum, named in errors.
    """
    expected = _expected_hash(sha256, key)
    fname = url_file_name(url)
    downloader = _HashingDownloader(url)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{expected}" if expected else None,
            fname=fname,
            path=dest_dir,
            downloader=downloader,
        )
    except ValueError as err:
        if expected and downloader.sha256 and downloader.sha256 != expected:
            raise MeddapError(
                f"downloaded file {url} has sha256 {downloader.sha256}, expected {expected} "
                f"(config key {key})"
            ) from err
        raise MeddapError(f"could not download {url}: {err}") from err
    except requests.exceptions.RequestException as err:
        raise MeddapError(f"could not download {url}: {err}") from err
    if expected is None:
        log.info("sha256 of %s is %s; pin it with config key %s", url, file_sha256(path), key)
    return Path(path)


def kaggle_download(ref: str, dest: Path) -> None:
    """Download Kaggle dataset `ref` ("owner/dataset") as `dest/<dataset>.zip` (kept if present)."""
    if not _KAGGLE_REF.match(ref):
        raise MeddapError(f"Kaggle dataset {ref!r} is not of the form 'owner/dataset'")
    if kaggle_zip(ref, dest).is_file():
        return
    api = _kaggle_api()
    with atomic_dir(dest) as tmp:
        api.dataset_download_files(ref, path=str(tmp), unzip=False, quiet=False)


def kaggle_zip(ref: str, dest: Path) -> Path:
    """Where the Kaggle API stores the archive of dataset `ref` in `dest`."""
    return Path(dest) / f"{ref.split('/')[-1]}.zip"


def _kaggle_api() -> Any:
    """An authenticated KaggleApi (importing kaggle already authenticates)."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
    except ImportError as err:
        raise MeddapError(
            "the 'kaggle' package is not installed: pip install kaggle and configure "
            "~/.kaggle/kaggle.json, or download the dataset yourself and set its 'path:'"
        ) from err
    except (OSError, ValueError) as err:
        raise MeddapError(
            "Kaggle credentials are missing or invalid: put your token in ~/.kaggle/kaggle.json "
            "or set KAGGLE_USERNAME and KAGGLE_KEY, or set the dataset's 'path:' instead"
        ) from err
    return api


def _materialise(archive_or_file: Path, root: Path, limits: Archives) -> None:
    if is_archive(archive_or_file):
        safe_extract(archive_or_file, root, limits)
        return
    with atomic_dir(root) as tmp:
        shutil.copy2(archive_or_file, tmp / archive_or_file.name)


def _check_path_archive(path: str, content: str, dataset: str, entry: dict) -> None:
    """The `path:` archive is as planned (`content`) and matches its `sha256:`, if given."""
    found = file_sha256(path)
    if found != content:
        raise MeddapError(f"archive {path} changed after the workflow was planned: run again")
    key = f"datasets.{dataset}.sha256"
    expected = _expected_hash(entry.get("sha256"), key)
    if expected and found != expected:
        raise MeddapError(
            f"archive {path} has sha256 {found}, expected {expected} (config key {key})"
        )


def fetch_dataset(
    *,
    root: str,
    dataset: str,
    entry: dict,
    archives: Archives,
    archive: Sequence[str] = (),
    content: str = "",
) -> None:
    """Materialise dataset `dataset` (registry entry `entry`) as a folder at `root`.

    `archive` is the `path:` archive (empty for other sources) and `content` its sha256 from
    when the DAG was built (the rerun trigger): an archive changed since then, or one that does
    not match the entry's `sha256`, stops the job. `archives` limits what is extracted.
    """
    kind = source_kind(dataset, entry)
    out = Path(root)
    cache = out.parent.parent / "downloads" / dataset
    if kind == "phantom":
        from meddap.data.phantom import generate_phantom

        generate_phantom(out, **entry["phantom"])
    elif kind == "path_archive":
        (path,) = archive
        _check_path_archive(path, content, dataset, entry)
        safe_extract(Path(path), out, archives)
    elif kind == "url":
        sha = entry.get("sha256")
        fetched = download(entry["url"], cache, sha, f"datasets.{dataset}.sha256")
        _materialise(fetched, out, archives)
    elif kind == "kaggle":
        kaggle_download(entry["kaggle"], cache)
        safe_extract(kaggle_zip(entry["kaggle"], cache), out, archives)
    else:
        raise MeddapError(
            f"config key 'datasets.{dataset}.path' names a folder, which is read in place "
            "and never fetched"
        )
