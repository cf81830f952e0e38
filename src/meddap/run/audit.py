"""`meddap audit PATH`: walk an output's provenance back to the raw data, re-hashing every file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meddap.common.errors import MeddapError
from meddap.run.provenance import hashed, sidecar


def _check(path: Path, recorded: dict[str, Any], role: str, hashes: dict[Path, dict]) -> None:
    """Stop unless `path` exists and still hashes as `recorded` (each file hashed once a walk)."""
    if not path.exists():
        raise MeddapError(f"{path} is missing ({role})")
    if path not in hashes:
        hashes[path] = hashed(path)
    if hashes[path]["sha256"] != recorded["sha256"]:
        raise MeddapError(_changed(path, recorded.get("files"), hashes[path].get("files"), role))


def _changed(path: Path, before: dict | None, after: dict | None, role: str) -> str:
    """The sentence for a changed file, or for the first changed file of a changed folder."""
    if before is None or after is None:
        return f"{path} has changed since it was recorded ({role})"
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    removed, added = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    counts = f"{len(changed)} changed, {len(added)} added, {len(removed)} removed"
    if changed:
        what = f"{path / changed[0]} has changed"
    elif removed:
        what = f"{path / removed[0]} is gone"
    else:
        what = f"{path / added[0]} is new"
    return f"{what} since folder {path} was recorded ({role}; {counts})"


def _record(path: Path) -> dict[str, Any] | None:
    file = sidecar(path)
    return json.loads(file.read_text()) if file.is_file() else None


def _verify(path: Path, record: dict[str, Any], root: Path, hashes: dict[Path, str]) -> list[Path]:
    """Check every output and input of the record of `path`; return the inputs to follow."""
    outputs = {(root / o["path"]).resolve(): o for o in record["outputs"]}
    if path not in outputs:
        raise MeddapError(f"{sidecar(path)} does not name {path} among its outputs")
    for output, item in outputs.items():  # the job's other outputs too (a manifest's masks)
        _check(output, item, f"output of rule {record['rule']}", hashes)
    inputs = []
    for name, items in record["inputs"].items():
        for item in items:
            source = (root / item["path"]).resolve()
            _check(source, item, f"input '{name}' of rule {record['rule']}", hashes)
            inputs.append(source)
    return inputs


def lineage(target: str | Path, root: str | Path = ".") -> Iterator[tuple[Path, dict | None]]:
    """Each file upstream of `target` (itself first) with its provenance record (None: raw data).

    Raises MeddapError naming the first file that is missing, changed or substituted.
    """
    base = Path(root).resolve()
    start = (base / target).resolve()
    if _record(start) is None:
        raise MeddapError(f"{target} has no provenance record ({sidecar(start).name} is missing)")
    queue, seen, hashes = [start], {start}, {}
    while queue:
        path = queue.pop(0)
        record = _record(path)
        yield path, record
        for source in _verify(path, record, base, hashes) if record else []:
            if source not in seen:
                seen.add(source)
                queue.append(source)


def describe(path: Path, record: dict | None, root: Path) -> str:
    """One block of the printed lineage."""
    name = path.relative_to(root) if path.is_relative_to(root) else path
    if record is None:
        return f"{name}\n  raw input (no upstream record), sha256 verified"
    packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items() if v)
    code = record["code"]
    return "\n".join(
        [
            f"{name}",
            f"  rule {record['rule']} {json.dumps(record['wildcards'], sort_keys=True)}",
            f"  params {json.dumps(record['params'], sort_keys=True, default=str)}",
            f"  code meddap {code['meddap']} commit {code['git_commit']} "
            f"dirty={code['git_dirty']} source {code['source_sha256'][:12]}",
            f"  packages {packages}",
            f"  device {record['device']} host {record['host']} slurm {record['slurm_job_id']}",
            f"  {record['started']} -> {record['ended']}",
        ]
    )


def audit(target: str, root: str = ".") -> str:
    """The verified lineage of `target` as text (MeddapError if any link is broken)."""
    base = Path(root).resolve()
    blocks = [describe(path, record, base) for path, record in lineage(target, base)]
    return "\n".join(blocks) + f"\n{len(blocks)} files verified"
