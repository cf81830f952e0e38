"""The run ledger: one row per workflow job, gathered from the provenance records of results."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.common.hashing import SIDECAR_SUFFIX
from meddap.common.tables import write_table

log = logging.getLogger(__name__)

RECORD_KEYS = (
    "rule", "wildcards", "params", "inputs", "outputs", "code", "packages",
    "device", "host", "slurm_job_id", "started", "ended",
)  # fmt: skip
CODE_KEYS = ("meddap", "source_sha256", "git_commit", "git_dirty")
PROCESS_KEYS = ("startup_seconds", "startup_cpu_seconds", "cpu_seconds", "max_rss_mb")
COLUMNS = (
    "rule", "wildcards", "params", "outputs", "output_sha256", "n_inputs", "input_sha256",
    "meddap_version", "source_sha256", "git_commit", "git_dirty", "packages", "device", "host",
    "slurm_job_id", "cuda_visible_devices", "started", "ended", "seconds", *PROCESS_KEYS,
)  # fmt: skip


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _load(file: Path) -> dict[str, Any]:
    """The provenance record in `file`; MeddapError unless it is one."""
    try:
        record = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MeddapError(f"{file} is not valid JSON (expected a provenance record)") from err
    if not isinstance(record, dict) or any(k not in record for k in RECORD_KEYS):
        raise MeddapError(
            f"{file} is not a provenance record (expected keys {', '.join(RECORD_KEYS)})"
        )
    if not isinstance(record["code"], dict) or any(k not in record["code"] for k in CODE_KEYS):
        raise MeddapError(
            f"{file} has an incomplete 'code' entry (expected {', '.join(CODE_KEYS)})"
        )
    return record


def _inputs_sha256(inputs: dict[str, list[dict[str, str]]]) -> str:
    """One fingerprint of every (path, sha256) a job read."""
    lines = sorted(f"{i['path']}\0{i['sha256']}\n" for items in inputs.values() for i in items)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """The flat ledger row of one record."""
    code, outputs = record["code"], record["outputs"]
    elapsed = datetime.fromisoformat(record["ended"]) - datetime.fromisoformat(record["started"])
    slurm = record["slurm_job_id"]
    return {
        "rule": record["rule"],
        "wildcards": _json(record["wildcards"]),
        "params": _json(record["params"]),
        "outputs": ";".join(o["path"] for o in outputs),
        "output_sha256": ";".join(o["sha256"] for o in outputs),
        "n_inputs": sum(len(items) for items in record["inputs"].values()),
        "input_sha256": _inputs_sha256(record["inputs"]),
        "meddap_version": code["meddap"],
        "source_sha256": code["source_sha256"],
        "git_commit": code["git_commit"],
        "git_dirty": bool(code["git_dirty"]),
        "packages": _json(record["packages"]),
        "device": record["device"],
        "host": record["host"],
        "slurm_job_id": None if slurm is None else str(slurm),
        "cuda_visible_devices": record.get("cuda_visible_devices"),
        "started": record["started"],
        "ended": record["ended"],
        "seconds": elapsed.total_seconds(),
        **{key: (record.get("process") or {}).get(key) for key in PROCESS_KEYS},
    }


def collect(root: Path, results: str = paths.RESULTS) -> pd.DataFrame:
    """One row per job whose provenance records lie under `root/results` and whose outputs exist.

    Records written beside each output of a job count once; records naming an output that
    no longer exists (stale) are skipped and counted in the log.
    """
    root = Path(root)
    jobs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for file in sorted((root / results).rglob(f"*{SIDECAR_SUFFIX}")):
        record = _load(file)
        jobs.setdefault((record["rule"], _json(record["wildcards"]), record["started"]), record)
    live = [r for r in jobs.values() if all((root / o["path"]).exists() for o in r["outputs"])]
    if len(live) < len(jobs):
        log.info("skipped %d stale records of outputs that no longer exist", len(jobs) - len(live))
    rows = pd.DataFrame([_row(r) for r in live], columns=list(COLUMNS))
    return rows.sort_values(["rule", "wildcards", "outputs", "started"], ignore_index=True)


def write_ledger(*, parquet: str, csv: str) -> None:
    """Job function: write the ledger of every job of the working directory to `parquet`, `csv`."""
    ledger = collect(Path.cwd())
    write_table(ledger, parquet, csv)
    log.info(
        "ledger: %d jobs of %d rules, %d SLURM jobs",
        len(ledger),
        ledger["rule"].nunique(),
        ledger["slurm_job_id"].nunique(),
    )
