"""Safe extraction of zip and tar archives: nothing lands outside the destination.

Limits (before anything is written): the declared uncompressed total (MAX_TOTAL_BYTES), each
member's declared size (`archives.max_member_bytes`) and compression ratio
(`archives.max_ratio`: uncompressed / compressed bytes of a zip member, of the whole archive for
a tar, whose members are compressed together; members and tars under RATIO_FLOOR bytes are
exempt, as a small all-black mask may compress far better without being a bomb). A zip member
never yields more bytes than it declares (`zipfile` stops there), so the caps hold.
"""

from __future__ import annotations

import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path, PurePosixPath

from meddap.common.atomic import atomic_dir
from meddap.common.errors import MeddapError
from meddap.common.settings import Archives

MAX_TOTAL_BYTES = 50 * 1024**3  # declared uncompressed size; far above any breast-ultrasound set
RATIO_FLOOR = 1024**2  # uncompressed bytes below which the compression ratio is not checked
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


def _check_size(archive: Path, name: str, size: int, limits: Archives) -> None:
    if size > limits.max_member_bytes:
        raise MeddapError(
            f"archive {archive} has member {name!r} of {size} bytes, above the "
            f"{limits.max_member_bytes}-byte cap (config key archives.max_member_bytes)"
        )


def _check_ratio(archive: Path, what: str, size: int, packed: int, limits: Archives) -> None:
    """Refuse `what` (a member, or the whole tar) expanding `packed` bytes to `size` beyond
    the ratio cap."""
    if size >= RATIO_FLOOR and size > limits.max_ratio * max(packed, 1):
        raise MeddapError(
            f"archive {archive} has {what} compressed {size / max(packed, 1):.0f}:1 "
            f"({packed} to {size} bytes), above the {limits.max_ratio}:1 cap "
            "(config key archives.max_ratio; a zip bomb or not a dataset)"
        )


def _check_unique(archive: Path, names: list[str]) -> None:
    """Refuse two file members of one name (extraction would silently keep the later one)."""
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise MeddapError(
            f"archive {archive} has several members named {', '.join(map(repr, repeated))} "
            "(expected one file per name)"
        )


def _check_zip(archive: Path, zf: zipfile.ZipFile, limits: Archives) -> None:
    for info in zf.infolist():
        _check_name(archive, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise MeddapError(f"archive {archive} has member {info.filename!r} that is not a file")
        _check_size(archive, info.filename, info.file_size, limits)
        _check_ratio(
            archive, f"member {info.filename!r}", info.file_size, info.compress_size, limits
        )
    _check_unique(archive, [info.filename for info in zf.infolist() if not info.is_dir()])
    _check_total(archive, sum(info.file_size for info in zf.infolist()))


def _check_tar(archive: Path, tf: tarfile.TarFile, limits: Archives) -> None:
    members = tf.getmembers()
    for member in members:
        _check_name(archive, member.name)
        if not (member.isfile() or member.isdir()):
            kind = "a link" if member.issym() or member.islnk() else "a device or special file"
            raise MeddapError(f"archive {archive} has member {member.name!r} that is {kind}")
        _check_size(archive, member.name, member.size, limits)
    _check_unique(archive, [member.name for member in members if member.isfile()])
    total = sum(member.size for member in members)
    _check_total(archive, total)
    _check_ratio(archive, "its members", total, archive.stat().st_size, limits)  # one stream


def _extract(archive: Path, into: Path, limits: Archives) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip(archive, zf, limits)
            zf.extractall(into)
        return
    with tarfile.open(archive) as tf:
        _check_tar(archive, tf, limits)
        tf.extractall(into, filter="data")


def safe_extract(archive: Path, dest: Path, limits: Archives) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) `archive` into folder `dest`, keeping its structure.

    Members that would escape `dest`, links, device files, repeated names and anything above
    the limits (see the module) are refused before anything is written; `dest` appears only
    when complete.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise MeddapError(f"archive {archive} does not exist")
    try:
        with atomic_dir(dest) as tmp:
            _extract(archive, tmp, limits)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise MeddapError(f"archive {archive} is corrupt or not a zip/tar archive ({err})") from err
    except OSError as err:
        if err.errno is not None:  # a real I/O failure (disk full, permissions), not bad data
            raise
        raise MeddapError(f"archive {archive} is corrupt ({err})") from err
