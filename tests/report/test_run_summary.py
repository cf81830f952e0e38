"""The run summary (results/default_run.md): tables verbatim, class fidelity, job times."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.report.run_summary import run_summary


def _ledger(path: Path, jobs: list[tuple[str, str, str]]) -> str:
    frame = pd.DataFrame(jobs, columns=["rule", "started", "ended"])
    seconds = pd.to_datetime(frame.ended) - pd.to_datetime(frame.started)
    frame.assign(seconds=seconds.dt.total_seconds()).to_parquet(path)
    return str(path)


def test_the_summary_holds_each_table_the_fidelity_and_the_times(tmp_path: Path) -> None:
    table = tmp_path / "table1.md"
    table.write_text("Table 1: caption\n\n| model | updates |\n| --- | --- |\n| net | 600 |\n")
    fidelity = tmp_path / "r2-none.json"
    write_json(
        {"fold": 0, "model": "net", "rank": 2, "adjective": "none", "accuracy": 0.75}, fidelity
    )
    ledger = _ledger(
        tmp_path / "ledger.parquet",
        [
            ("train_segmenter", "2026-01-01T00:00:00", "2026-01-01T00:01:00"),
            ("train_segmenter", "2026-01-01T00:00:30", "2026-01-01T00:02:00"),
            ("table1", "2026-01-01T00:09:00", "2026-01-01T00:10:00"),
        ],
    )
    out = tmp_path / "default_run.md"
    job = {"ledger": ledger, "summary": str(out), "dataset": "phantom"}
    run_summary(tables=[str(table)], fidelity=[str(fidelity)], **job)
    text = out.read_text()
    assert "dataset `phantom`" in text and "differ between CPUs" in text
    assert table.read_text().strip() in text  # verbatim, compute columns included
    assert "| 0 | net | 2 | none | 75 |" in text
    assert "3 jobs; their own work sums to 3.5 min; first start to last end 10.0 min" in text
    assert text.index("| train_segmenter | 2 | 150 |") < text.index("| table1 | 1 | 60 |")
    empty = _ledger(tmp_path / "empty.parquet", [])
    with pytest.raises(MeddapError, match="holds no job"):
        run_summary(
            tables=[], fidelity=[], **{**job, "ledger": empty, "summary": str(tmp_path / "x")}
        )
    assert not (tmp_path / "x").exists()
