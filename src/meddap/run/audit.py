"""`meddap audit PATH`: walk an output's provenance back to the raw data, re-hashing every file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from meddap.common.atomic import read_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import SIDECAR_SUFFIX
from meddap.run.provenance import hashed, sidecar

_HASHED = {
    "type": "object",
    "required": ["path", "sha256"],
    "properties": {"path": {"type": "string"}, "sha256": {"type": "string"}},
}
_CODE = ["meddap", "git_commit", "git_dirty", "source_sha256"]
RECORD_SCHEMA = {  # the keys `provenance.build_record` writes and this module reads
    "type": "object",
    "required": [
        "rule", "wildcards", "params", "inputs", "outputs", "code", "packages", "device",
        "host", "slurm_job_id", "started", "ended",
    ],
    "properties": {
        "rule": {"type": "string"},
        "wildcards": {"type": "object"},
        "params": {"type": "object"},
        "inputs": {"type": "object", "additionalProperties": {"type": "array", "items": _HASHED}},
        "outputs": {"type": "array", "minItems": 1, "items": _HASHED},
        "code": {"type": "object", "required": _CODE},
        "packages": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    },
}  # fmt: skip


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
    """The provenance record of `path` (None: raw data); a damaged record stops naming it."""
    file = sidecar(path)
    if not file.is_file():
        return None
    record = read_json(file)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(RECORD_SCHEMA).iter_errors(record)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise MeddapError(
            f"{file} is not a provenance record ({where}: {error.message}); "
            "rerun the job that wrote it (snakemake --forcerun)"
        )
    return record


def _verify(path: Path, record: dict[str, Any], root: Path, hashes: dict[Path, str]) -> list[Path]:
    """Check every output and input of the record of `path`; return the inputs to follow."""
    outputs = {(root / o["path"]).resolve(): o for o in record["outputs"]}
    if path not in outputs:
        named = record["outputs"][0]["path"]
        raise MeddapError(
            f"{sidecar(path)} does not name {path} among its outputs (it names {named}, relative "
            f"to the workflow's working directory): pass that directory as --root (not {root}), "
            "or the record belongs to another file"
        )
    for output, item in outputs.items():  # the job's other outputs too (a manifest's masks)
        _check(output, item, f"output of rule {record['rule']}", hashes)
    inputs = []
    for name, items in record["inputs"].items():
        for item in items:
            source = (root / item["path"]).resolve()
            _check(source, item, f"input '{name}' of rule {record['rule']}", hashes)
            inputs.append(source)
    return inputs


def _workdir(output: Path, record: dict[str, Any]) -> Path:
    """The folder the workflow ran in: where the record's relative output paths lead to `output`.

    Falls back to the current directory (the record's check then names the mismatch).
    """
    for item in record["outputs"]:
        parts = Path(item["path"]).parts
        if parts and not Path(item["path"]).is_absolute() and output.parts[-len(parts) :] == parts:
            return Path(*output.parts[: -len(parts)])
    return Path.cwd()


def _start(target: str | Path, root: str | Path | None) -> tuple[Path, Path]:
    """The audited output and the workflow's working directory (found from its record unless
    `root` is given); stops on an empty, missing or unrecorded target."""
    if not str(target).strip():
        raise MeddapError("meddap audit needs the path of a workflow output, got an empty path")
    start = (Path(root or ".").resolve() / target).resolve()
    if start == start.parent:
        raise MeddapError(f"{target} is the file system's root, not a workflow output")
    if start.name.endswith(SIDECAR_SUFFIX):
        output = start.name.removesuffix(SIDECAR_SUFFIX)
        raise MeddapError(f"{target} is a provenance record: audit the output it records, {output}")
    if not start.exists():
        under = f" under --root {root}" if root is not None else ""
        raise MeddapError(f"{target} does not exist{under}")
    record = _record(start)
    if record is None:
        raise MeddapError(f"{target} has no provenance record ({sidecar(start).name} is missing)")
    return start, Path(root).resolve() if root is not None else _workdir(start, record)


def lineage(start: Path, base: Path) -> Iterator[tuple[Path, dict | None]]:
    """Each file upstream of output `start` (itself first) with its provenance record (None: raw
    data), for a workflow run in `base`.

    Raises MeddapError naming the first file that is missing, changed or substituted, or whose
    record is damaged.
    """
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


def audit(target: str, root: str | None = None) -> str:
    """The verified lineage of `target` as text (MeddapError if any link is broken)."""
    start, base = _start(target, root)
    blocks = [describe(path, record, base) for path, record in lineage(start, base)]
    return "\n".join(blocks) + f"\n{len(blocks)} files verified"
