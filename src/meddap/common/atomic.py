"""Atomic outputs: write to a temporary name beside the target, rename on success."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from meddap.common.errors import MeddapError


def _temp_name(final: Path, keep_suffix: bool) -> Path:
    """`final`'s hidden temporary, once the temporaries of dead processes are removed.

    Files get `.{stem}.tmp{pid}{suffix}` (writers infer formats from the suffix), folders
    `.{name}.tmp{pid}`.
    """
    head, tail = (f".{final.stem}.tmp", final.suffix) if keep_suffix else (f".{final.name}.tmp", "")
    remove_stale(final.parent, head, tail)
    return final.with_name(f"{head}{os.getpid()}{tail}")


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (it may be another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path, head: str, tail: str) -> None:
    """Remove the temporaries `{head}{pid}{tail}` in `folder` whose process no longer runs.

    A killed job (time limit, preemption, OOM) never reaches its cleanup, so its temporary
    (e.g. `.masks.tmp4242`) would stay for good; the next job writing the same target removes
    it. Temporaries of live processes, this one's included, are left alone. Processes are
    looked up on this machine: Snakemake's lock keeps two runs from writing one target.
    """
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.startswith(head) and e.name.endswith(tail)]
    for name in names:
        pid = name[len(head) : len(name) - len(tail)]
        if pid.isascii() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another job may remove it first
                _remove(folder / name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(file: Path) -> None:
    """Give `file` the umask's mode (0644 by default): some writers (safetensors) make 0600."""
    os.chmod(file, 0o666 & ~_umask())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fresh_temp(final: Path, keep_suffix: bool) -> Path:
    """`final`'s temporary, with its folder made and no leftover of this process in the way."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(final, keep_suffix)
    _remove(tmp)
    return tmp


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path; on success it is renamed to `path`, on error removed."""
    final = Path(path)
    tmp = _fresh_temp(final, keep_suffix=True)
    try:
        yield tmp
        _share(tmp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            _remove(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path`, on error it is removed."""
    final = Path(path)
    tmp = _fresh_temp(final, keep_suffix=False)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file() and not file.is_symlink():
                _share(file)
        _remove(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            _remove(tmp)


def check_writable(folder: str | os.PathLike[str], what: str) -> None:
    """Stop unless files can be made in `folder` (where it is missing: in its nearest existing
    parent, where it would be made); `what` names the setting, e.g. '--output'.

    Run before long work, so that a bad destination fails at once, not after training.
    """
    wanted = Path(os.path.abspath(folder))
    existing = next(p for p in [wanted, *wanted.parents] if p.exists())
    if not existing.is_dir():
        raise MeddapError(f"{what} {folder} cannot be written: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise MeddapError(
            f"{what} {folder} cannot be written: making a file in {existing} failed "
            f"({err.strerror})"
        ) from None


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write `obj` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file's content; a file that cannot be read as JSON stops naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise MeddapError(f"{path} could not be read as JSON ({err})") from err


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame to Parquet without its index, atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_png(array: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write a uint8 (H, W) or (H, W, C) array as a PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
