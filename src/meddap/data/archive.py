"""Safe extraction of zip and tar archives: nothing lands outside the destination."""

from __future__ import annotations

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from meddap.common.atomic import atomic_dir
from meddap.common.errors import MeddapError

MAX_TOTAL_BYTES = 50 * 1024**3  # declared uncompressed size; far above any breast-ultrasound set
_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(archive: Path, name: str) -> None:
    """Refuse member names that are absolute, carry a drive letter or climb out with `..`."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix) or ".." in PurePosixPath(posix).parts:
        raise MeddapError(
            f"archive {archive} has member {name!r} that would land outside its folder"
        )


def _check_total(archive: Path, total: int) -> None:
    if total > MAX_TOTAL_BYTES:
        raise MeddapError(
            f"archive {archive} declares {total} bytes uncompressed, above the "
            f"{MAX_TOTAL_BYTES}-byte cap (a zip bomb or not a dataset)"
        )


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        _check_name(archive, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise MeddapError(f"archive {archive} has member {info.filename!r} that is not a file")
    _check_total(archive, sum(info.file_size for info in zf.infolist()))


def _check_tar(archive: Path, tf: tarfile.TarFile) -> None:
    members = tf.getmembers()
    for member in members:
        _check_name(archive, member.name)
        if not (member.isfile() or member.isdir()):
            kind = "a link" if member.issym() or member.islnk() else "a device or special file"
            raise MeddapError(f"archive {archive} has member {member.name!r} that is {kind}")
    _check_total(archive, sum(member.size for member in members))


def _extract(archive: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf)
            zf.extractall(into)
        return
    with tarfile.open(archive) as tf:
        _check_tar(archive, tf)
        tf.extractall(into, filter="data")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) `archive` into folder `dest`, keeping its structure.

    Members that would escape `dest`, links, device files and archives declaring more than
    MAX_TOTAL_BYTES are refused before anything is written; `dest` appears only when complete.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise MeddapError(f"archive {archive} does not exist")
    try:
        with atomic_dir(dest) as tmp:
            _extract(archive, tmp)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise MeddapError(f"archive {archive} is corrupt or not a zip/tar archive ({err})") from err
    except OSError as err:
        if err.errno is not None:  # a real I/O failure (disk full, permissions), not bad data
            raise
        raise MeddapError(f"archive {archive} is corrupt ({err})") from err
