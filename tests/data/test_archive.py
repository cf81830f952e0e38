"""safe_extract: zip and tar archives extract as they are; hostile members are refused."""

from __future__ import annotations

import io
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from meddap.common.errors import MeddapError
from meddap.common.settings import Archives
from meddap.data import archive
from meddap.data.archive import safe_extract

LIMITS = Archives(max_member_bytes=1024**3, max_ratio=100)  # the default config's
TREE = {"Dataset_BUSI_with_GT/benign/benign (1).png": b"image", "README.txt": b"notes"}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info in members:
            data = b"x" * info.size if info.isfile() else None
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 3, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _assert_refused(path: Path, match: str) -> None:
    dest = path.parent / "out"
    with pytest.raises(MeddapError, match=match):
        safe_extract(path, dest, LIMITS)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_zip_extracts_with_its_structure(tmp_path: Path) -> None:
    safe_extract(_zip(tmp_path / "a.zip", TREE), tmp_path / "out", LIMITS)
    assert _files(tmp_path / "out") == TREE


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [(".tar.gz", "w:gz"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz"), (".tar", "w")],
)
def test_tar_extracts_with_its_structure(tmp_path: Path, suffix: str, mode: str) -> None:
    members = [_info("top/dir", tarfile.DIRTYPE), _info("top/dir/file.txt", size=5)]
    safe_extract(_tar(tmp_path / f"a{suffix}", members, mode), tmp_path / "out", LIMITS)
    assert _files(tmp_path / "out") == {"top/dir/file.txt": b"xxxxx"}


def test_extraction_replaces_an_old_destination(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    safe_extract(_zip(tmp_path / "a.zip", TREE), tmp_path / "out", LIMITS)
    assert _files(tmp_path / "out") == TREE


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../../evil", "C:/evil", "..\\evil"])
def test_zip_members_outside_dest_are_refused(tmp_path: Path, name: str) -> None:
    path = _zip(tmp_path / "a.zip", {"ok.txt": b"ok", name: b"bad"})
    _assert_refused(path, rf"archive .*a\.zip has member {re.escape(repr(name))} that would")


@pytest.mark.parametrize("name", ["../evil", "/abs", "d/../../evil"])
def test_tar_members_outside_dest_are_refused(tmp_path: Path, name: str) -> None:
    path = _tar(tmp_path / "a.tar.gz", [_info("ok.txt"), _info(name)])
    _assert_refused(path, rf"archive .*a\.tar\.gz has member '{name}' that would land outside")


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        (_info("link", tarfile.SYMTYPE, link="../../outside"), "a link"),
        (_info("inner", tarfile.SYMTYPE, link="ok.txt"), "a link"),
        (_info("hard", tarfile.LNKTYPE, link="/etc/passwd"), "a link"),
        (_info("dev", tarfile.CHRTYPE), "a device or special file"),
        (_info("fifo", tarfile.FIFOTYPE), "a device or special file"),
    ],
)
def test_tar_links_and_devices_are_refused(
    tmp_path: Path, member: tarfile.TarInfo, kind: str
) -> None:
    path = _tar(tmp_path / "a.tgz", [_info("ok.txt"), member])
    _assert_refused(path, rf"member '{member.name}' that is {kind}")


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("escape")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "../../../etc/passwd")
    _assert_refused(path, r"member 'escape' that is not a file")


def test_declared_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    path = _zip(tmp_path / "bomb.zip", {"a": b"\0" * 600, "b": b"\0" * 600})
    _assert_refused(path, r"bomb\.zip declares 1200 bytes uncompressed, above the 1000-byte cap")


def test_corrupt_archives(tmp_path: Path) -> None:
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    _assert_refused(tmp_path / "junk.zip", r"archive .*junk\.zip is corrupt")


def test_zip_with_damaged_data_leaves_nothing(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"first.txt": b"fine", "big.bin": bytes(range(256)) * 64})
    data = bytearray(path.read_bytes())
    start = data.index(b"big.bin") + len("big.bin") + 20  # inside big.bin's compressed bytes
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    _assert_refused(path, r"archive .*a\.zip is corrupt")


def test_truncated_tar_gz(tmp_path: Path) -> None:
    path = _tar(tmp_path / "a.tar.gz", [_info("f.bin", size=50_000)])
    path.write_bytes(path.read_bytes()[:-30])
    _assert_refused(path, r"archive .*a\.tar\.gz is corrupt")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match=r"archive .*nope\.zip does not exist"):
        safe_extract(tmp_path / "nope.zip", tmp_path / "out", LIMITS)


def test_member_above_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path / "a.zip", {"ok.png": b"png", "big.bin": b"\0" * 5000})
    with pytest.raises(MeddapError, match=r"member 'big\.bin' of 5000 bytes, above the 4096-byte"):
        safe_extract(path, tmp_path / "out", Archives(max_member_bytes=4096, max_ratio=100))
    assert not (tmp_path / "out").exists()


def test_zip_bomb_member_is_refused_by_its_ratio(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.zip", {"ok.png": b"png", "zeros.bin": b"\0" * 4 * 1024**2})
    _assert_refused(
        path, r"member 'zeros\.bin' compressed \d+:1 .* above the 100:1 cap .*max_ratio"
    )


def test_small_members_compress_freely(tmp_path: Path) -> None:
    tree = {"mask.bmp": b"\0" * 500_000}  # an all-black mask: 500:1, but small
    safe_extract(_zip(tmp_path / "a.zip", tree), tmp_path / "out", LIMITS)
    assert _files(tmp_path / "out") == tree


def test_tar_bomb_is_refused_by_its_ratio(tmp_path: Path) -> None:
    path = _tar(tmp_path / "a.tar.gz", [_info("x.bin", size=4 * 1024**2)])  # b"x" * 4 MiB
    _assert_refused(path, r"a\.tar\.gz has its members compressed \d+:1 .*max_ratio")


def test_repeated_member_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("benign/benign (1).png", b"first")
        zf.writestr("benign/benign (1).png", b"second")
    _assert_refused(path, r"a\.zip has several members named 'benign/benign \(1\)\.png'")
    (tmp_path / "t").mkdir()
    path = _tar(tmp_path / "t" / "a.tar", [_info("a/x.png"), _info("a/x.png", size=5)], "w")
    _assert_refused(path, r"a\.tar has several members named 'a/x\.png'")
