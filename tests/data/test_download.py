"""Downloads over file:// URLs, Kaggle errors, and fetch_dataset for every source kind."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from meddap.common.errors import MeddapError
from meddap.common.settings import Archives
from meddap.data.download import download, fetch_dataset, kaggle_download
from meddap.data.ingest import build_manifest

KEY = "datasets.busi.sha256"
LIMITS = Archives(max_member_bytes=1024**3, max_ratio=100)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "data file.bin"
    path.parent.mkdir()
    path.write_bytes(b"breast ultrasound" * 100)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _busi_zip(tmp_path: Path) -> Path:
    """A zipped BUSI-layout folder nested as in the official zip: one image and mask per class."""
    root = tmp_path / "tree" / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (12, 10), (40, 40, 40)).save(root / label / f"{label} (1).png")
        mask = np.zeros((10, 12), dtype=np.uint8)
        mask[2:5, 3:7] = 0 if label == "normal" else 255
        Image.fromarray(mask).save(root / label / f"{label} (1)_mask.png")
    return Path(shutil.make_archive(str(tmp_path / "busi"), "zip", root.parent))


def test_download_with_correct_sha256(tmp_path: Path, payload: Path) -> None:
    got = download(payload.as_uri(), tmp_path / "dl", _sha(payload), KEY)
    assert got == tmp_path / "dl" / "data file.bin" and got.read_bytes() == payload.read_bytes()
    again = download(payload.as_uri(), tmp_path / "dl", f"sha256:{_sha(payload).upper()}", KEY)
    assert again == got


def test_download_with_wrong_sha256_leaves_nothing(tmp_path: Path, payload: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(MeddapError, match=rf"has sha256 {_sha(payload)}, expected {wrong} .*{KEY}"):
        download(payload.as_uri(), tmp_path / "dl", wrong, KEY)
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())


def test_download_without_sha256_logs_it(
    tmp_path: Path, payload: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="meddap.data.download"):
        download(payload.as_uri(), tmp_path / "dl", None, KEY)
    assert f"sha256 of {payload.as_uri()} is {_sha(payload)}; pin it with config key {KEY}" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("url", "sha", "message"),
    [
        (
            "file:///no/such/file.zip",
            None,
            r"file /no/such/file\.zip named by URL .* does not exist",
        ),
        (
            "gopher://example.org/a.zip",
            None,
            r"URL gopher://example\.org/a\.zip has an unsupported",
        ),
        ("file:///x/a.zip", "abc", rf"config key '{KEY}': 'abc' is not a sha256"),
        ("https://example.org/", None, r"URL https://example\.org/ does not end with a file name"),
    ],
)
def test_download_bad_input(tmp_path: Path, url: str, sha: str | None, message: str) -> None:
    with pytest.raises(MeddapError, match=message):
        download(url, tmp_path / "dl", sha, KEY)


def test_kaggle_without_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kaggle", None)  # makes `import kaggle...` fail
    with pytest.raises(MeddapError, match=r"'kaggle' package is not installed.*'path:'"):
        kaggle_download("owner/data", tmp_path / "dl")
    assert not (tmp_path / "dl").exists()


def _fake_kaggle(monkeypatch: pytest.MonkeyPatch, api: type) -> None:
    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = api  # type: ignore[attr-defined]
    for name in ("kaggle", "kaggle.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)


def test_kaggle_without_credentials_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoCredentials:
        def authenticate(self) -> None:
            raise OSError("Could not find kaggle.json")

    _fake_kaggle(monkeypatch, NoCredentials)
    with pytest.raises(MeddapError, match=r"Kaggle credentials .* ~/\.kaggle/kaggle\.json"):
        kaggle_download("owner/data", tmp_path / "dl")
    with pytest.raises(MeddapError, match=r"Kaggle dataset 'not a ref' is not of the form"):
        kaggle_download("not a ref", tmp_path / "dl")


def test_fetch_from_kaggle_extracts_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busi_zip = _busi_zip(tmp_path)

    class Api:
        def authenticate(self) -> None:
            pass

        def dataset_download_files(self, ref: str, path: str, **_: Any) -> None:
            shutil.copy(busi_zip, Path(path) / f"{ref.split('/')[1]}.zip")

    _fake_kaggle(monkeypatch, Api)
    root = tmp_path / "results" / "raw" / "kb"
    fetch_dataset(
        root=str(root),
        dataset="kb",
        entry={"layout": "busi", "kaggle": "o/busi-b"},
        archives=LIMITS,
    )
    assert (tmp_path / "results" / "downloads" / "kb" / "busi-b.zip").is_file()
    assert len(build_manifest(root, "kb", "busi", tmp_path / "masks")) == 3


def test_fetch_from_zip_path_gives_an_ingestible_folder(tmp_path: Path) -> None:
    root = tmp_path / "results" / "raw" / "busi"
    zipped = _busi_zip(tmp_path)
    entry = {"layout": "busi", "path": str(zipped)}
    fetch_dataset(
        root=str(root),
        dataset="busi",
        entry=entry,
        archives=LIMITS,
        archive=[str(zipped)],
        content=_sha(zipped),
    )
    table = build_manifest(root, "busi", "busi", tmp_path / "masks")
    assert list(table.id) == ["benign_1", "malignant_1", "normal_1"]
    assert (table.n_masks == 1).all()


def test_an_archive_changed_after_planning_stops(tmp_path: Path) -> None:
    zipped = _busi_zip(tmp_path)
    root = tmp_path / "results" / "raw" / "busi"
    with pytest.raises(MeddapError, match=r"busi\.zip changed after the workflow was planned"):
        fetch_dataset(
            root=str(root), dataset="busi", entry={"layout": "busi", "path": str(zipped)},
            archives=LIMITS, archive=[str(zipped)], content="0" * 64,
        )  # fmt: skip
    assert not root.exists()


def test_fetch_from_url_caches_and_extracts(tmp_path: Path) -> None:
    archive = _busi_zip(tmp_path)
    root = tmp_path / "results" / "raw" / "busi"
    entry = {"layout": "busi", "url": archive.as_uri(), "sha256": _sha(archive)}
    fetch_dataset(root=str(root), dataset="busi", entry=entry, archives=LIMITS)
    assert (tmp_path / "results" / "downloads" / "busi" / "busi.zip").is_file()
    assert (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png").is_file()


def test_fetch_from_url_copies_a_plain_file(tmp_path: Path, payload: Path) -> None:
    root = tmp_path / "results" / "raw" / "one"
    fetch_dataset(
        root=str(root),
        dataset="one",
        entry={"layout": "x", "url": payload.as_uri()},
        archives=LIMITS,
    )
    assert [p.name for p in root.iterdir()] == ["data file.bin"]


def test_fetch_phantom_calls_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, dict[str, Any]]] = []
    module = types.ModuleType("meddap.data.phantom")
    module.generate_phantom = lambda root, **kw: calls.append((Path(root), kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meddap.data.phantom", module)
    params = {"patients": 3, "image_size": 32, "seed": 1}
    fetch_dataset(
        root=str(tmp_path / "r"),
        dataset="p",
        entry={"layout": "busi", "phantom": params},
        archives=LIMITS,
    )
    assert calls == [(tmp_path / "r", params)]


def test_fetch_refuses_a_folder_path(tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match=r"'datasets\.mine\.path' names a folder"):
        fetch_dataset(
            root=str(tmp_path / "r"), dataset="mine", entry={"path": str(tmp_path)}, archives=LIMITS
        )


def test_a_path_archive_with_a_wrong_sha256_stops(tmp_path: Path) -> None:
    zipped = _busi_zip(tmp_path)
    root = tmp_path / "results" / "raw" / "busi"
    entry = {"layout": "busi", "path": str(zipped), "sha256": "ab" * 32}
    with pytest.raises(MeddapError, match=rf"busi\.zip has sha256 {_sha(zipped)}, expected (ab)+ "):
        fetch_dataset(
            root=str(root), dataset="busi", entry=entry, archives=LIMITS,
            archive=[str(zipped)], content=_sha(zipped),
        )  # fmt: skip
    assert not root.exists()
    entry["sha256"] = _sha(zipped)
    fetch_dataset(
        root=str(root), dataset="busi", entry=entry, archives=LIMITS,
        archive=[str(zipped)], content=_sha(zipped),
    )  # fmt: skip
    assert (root / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png").is_file()
