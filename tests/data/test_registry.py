"""Registry entries: `~` in a configured path, and what a `path` that cannot be read is."""

from __future__ import annotations

from pathlib import Path

import pytest

from meddap.common.errors import MeddapError
from meddap.data.registry import (
    ARCHIVE_SUFFIXES,
    check_local_path,
    local_dataset_dir,
    source_kind,
)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home folder holding data/busi/ and data/busi.zip."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data" / "busi").mkdir(parents=True)
    (tmp_path / "data" / "busi.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    return tmp_path


def test_tilde_in_path_is_the_home_folder(home: Path) -> None:
    folder, archive = {"path": "~/data/busi"}, {"path": "~/data/busi.zip"}
    check_local_path("busi", folder)
    check_local_path("busi", archive)
    assert local_dataset_dir(folder) == home / "data" / "busi"
    assert local_dataset_dir(archive) is None and source_kind("busi", archive) == "path_archive"
    with pytest.raises(MeddapError, match=rf"{home}/data/nope does not exist"):
        check_local_path("busi", {"path": "~/data/nope"})


@pytest.mark.parametrize("name", ["busi.rar", "busi.7z", "BUSI.RAR"])
@pytest.mark.parametrize("exists", [True, False], ids=["present", "missing"])
def test_unsupported_archive_is_named_as_such(home: Path, name: str, exists: bool) -> None:
    if exists:
        (home / name).write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(MeddapError) as err:
        check_local_path("busi", {"path": f"~/{name}"})
    message = str(err.value)
    assert message.startswith(f"config key 'datasets.busi.path': {home / name} is an unsupported")
    assert all(suffix in message for suffix in ARCHIVE_SUFFIXES) and "\n" not in message


def test_a_plain_file_is_not_a_dataset(home: Path) -> None:
    (home / "labels.csv").write_text("image,label\n")
    with pytest.raises(MeddapError, match=r"labels\.csv is a file but not an archive \(expected"):
        check_local_path("busi", {"path": str(home / "labels.csv")})
