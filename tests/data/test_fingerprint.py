"""Source fingerprints: content digests that ignore mtimes, a hash cache, the job's listing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meddap.common import hashing
from meddap.common.errors import MeddapError
from meddap.data.fingerprint import content_digest, fingerprint_source


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the cache goes to results/cache below the working directory
    root = tmp_path / "data"
    for name, data in [("benign/a.png", b"a"), ("malignant/b.png", b"bb")]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _digest(root: Path) -> str:
    return content_digest("busi", {"path": str(root)}, "path_dir")


def test_digest_follows_content_not_mtimes(folder: Path) -> None:
    before = _digest(folder)
    os.utime(folder / "benign" / "a.png", ns=(1, 1))
    assert _digest(folder) == before
    (folder / "benign" / "a.png").rename(folder / "malignant" / "a.png")  # moved to another class
    moved = _digest(folder)
    assert moved != before
    (folder / "malignant" / "a.png").write_bytes(b"A")
    assert _digest(folder) not in (before, moved)


def test_digest_is_empty_for_other_sources(folder: Path) -> None:
    assert content_digest("busi", {"path": str(folder)}, "path_archive") == ""
    assert content_digest("phantom", {"phantom": {}}, "path_dir") == ""


def test_the_cache_spares_rehashing_unchanged_files(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _digest(folder)
    cache = json.loads(Path("results/cache/sources/busi.json").read_text())
    assert {Path(p).name for p in cache} == {"a.png", "b.png"}
    monkeypatch.setattr(hashing, "_MEMO", {})  # a new process: only the stored cache is left
    read: list[Path] = []
    monkeypatch.setattr(hashing, "_read_sha256", read.append)  # records files read for hashing
    assert _digest(folder) == before
    assert read == []


def test_job_lists_every_file_and_stops_if_the_folder_changed(folder: Path) -> None:
    digest = _digest(folder)
    fingerprint_source(raw=str(folder), source="source.json", dataset="busi", content=digest)
    record = json.loads(Path("source.json").read_text())
    assert record["sha256"] == digest
    assert record["files"]["malignant/b.png"] == {
        "size": 2,
        "sha256": hashing.file_sha256(folder / "malignant" / "b.png"),
    }
    (folder / "benign" / "c.png").write_bytes(b"new")
    with pytest.raises(MeddapError, match="changed after the workflow was planned"):
        fingerprint_source(raw=str(folder), source="again.json", dataset="busi", content=digest)
    assert not Path("again.json").exists()
