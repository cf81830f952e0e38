"""The run ledger: one row per job from the provenance records beside results."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from meddap.common import hashing
from meddap.common.errors import MeddapError
from meddap.run import ledger, provenance

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _job(rule: str, fold: str, outputs: list[str], minute: int) -> None:
    """A fake job of `rule` reading data/raw.txt and writing `outputs`, with its records."""
    for out in outputs:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(f"{rule} {fold} {out}")
    record = provenance.build_record(
        rule=rule,
        inputs={"raw": ["data/raw.txt"]},
        outputs=outputs,
        params={"seed": 7, "fold": int(fold)},
        wildcards={"fold": fold},
        started=T0 + timedelta(minutes=minute),
        ended=T0 + timedelta(minutes=minute, seconds=90),
        process={"startup_seconds": 3.0, "startup_cpu_seconds": 2.5, "cpu_seconds": 60.0},
    )
    provenance.write_records(record)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with four jobs (created out of order); one job's output is gone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    Path("data").mkdir()
    Path("data/raw.txt").write_text("raw")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    _job("train", "1", ["results/train/1/model.txt"], minute=3)
    monkeypatch.delenv("SLURM_JOB_ID")
    _job("prepare", "1", ["results/prep/1/a.txt", "results/prep/1/b.txt"], minute=1)
    _job("prepare", "0", ["results/prep/0/a.txt", "results/prep/0/b.txt"], minute=0)
    _job("prepare", "2", ["results/prep/2/a.txt"], minute=2)
    Path("results/prep/2/a.txt").unlink()
    return tmp_path


def test_one_row_per_job_with_two_outputs(workdir: Path) -> None:
    rows = ledger.collect(workdir)
    assert list(rows.columns) == list(ledger.COLUMNS)
    prep0 = rows[rows["wildcards"] == '{"fold": "0"}'].iloc[0]
    assert (rows["outputs"] == prep0["outputs"]).sum() == 1
    assert prep0["outputs"] == "results/prep/0/a.txt;results/prep/0/b.txt"
    assert prep0["output_sha256"].split(";") == [
        hashing.file_sha256("results/prep/0/a.txt"),
        hashing.file_sha256("results/prep/0/b.txt"),
    ]
    assert prep0["params"] == '{"fold": 0, "seed": 7}'
    assert (prep0["n_inputs"], prep0["seconds"]) == (1, 90.0)
    assert (prep0["startup_cpu_seconds"], prep0["cpu_seconds"]) == (2.5, 60.0)
    assert pd.isna(prep0["max_rss_mb"])  # a key the record lacks is missing, not 0
    assert json.loads(prep0["packages"]) == provenance.package_versions()


def test_stale_record_is_skipped(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="meddap.run.ledger"):
        rows = ledger.collect(workdir)
    assert len(rows) == 3
    assert not rows["outputs"].str.contains("prep/2").any()
    assert "skipped 1 stale" in caplog.text


def test_slurm_job_id_comes_from_the_environment(workdir: Path) -> None:
    rows = ledger.collect(workdir).set_index("rule")
    assert rows.loc["train", "slurm_job_id"] == "4242"
    assert rows.loc["prepare", "slurm_job_id"].isna().all()


NO_CODE = json.dumps(dict.fromkeys(ledger.RECORD_KEYS, {}))


@pytest.mark.parametrize("text", ["{not json", '{"rule": "prepare"}', "[]", NO_CODE])
def test_corrupt_sidecar_names_the_file(workdir: Path, text: str) -> None:
    provenance.sidecar("results/prep/0/a.txt").write_text(text)
    with pytest.raises(MeddapError, match=r"results/prep/0/a\.txt\.prov\.json .*expected"):
        ledger.collect(workdir)


def test_write_ledger_round_trips(workdir: Path) -> None:
    ledger.write_ledger(parquet="ledger/runs.parquet", csv="ledger/runs.csv")
    rows = ledger.collect(workdir)
    pd.testing.assert_frame_equal(pd.read_parquet("ledger/runs.parquet"), rows)
    from_csv = pd.read_csv("ledger/runs.csv", dtype=str, keep_default_na=False)
    as_text = rows.astype(object).where(rows.notna(), "").astype(str)
    pd.testing.assert_frame_equal(from_csv, as_text, check_dtype=False)
    assert sorted(p.name for p in Path("ledger").iterdir()) == ["runs.csv", "runs.parquet"]


def test_row_order_is_deterministic(workdir: Path) -> None:
    rows = ledger.collect(workdir)
    assert list(zip(rows["rule"], rows["wildcards"], strict=True)) == [
        ("prepare", '{"fold": "0"}'),
        ("prepare", '{"fold": "1"}'),
        ("train", '{"fold": "1"}'),
    ]
    pd.testing.assert_frame_equal(ledger.collect(workdir), rows)
