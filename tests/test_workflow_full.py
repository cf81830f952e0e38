"""The whole pipeline through real Snakemake on a tiny config: data to tables, cells, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from meddap import provenance
from meddap.audit import audit
from tests.snakemake_runner import planned_jobs, snakemake

pytestmark = pytest.mark.slow

TINY = {
    "datasets": {
        "phantom": {
            "phantom": {"patients": 24, "image_size": 64, "duplicates": 2, "conflicting": 1}
        },
        "phantom_external": {"phantom": {"patients": 9, "image_size": 64}},
    },
    "folds": {"k": 2},
    "lora": {"ranks": [2, 4], "epochs": 1, "batch_size": 8},
    "synthesis": {
        "adjectives": ["none", "bright"],
        "ratios": [50, 100],
        "sampling": {"steps": 2, "batch_size": 32},
    },
    "classifier": {"epochs": 2},
}
CELL = "results/cells/table1/squeezenet1_1/bright/100.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("full")
    done = snakemake(work, config=TINY)
    assert done.returncode == 0, done.stderr[-4000:]
    return work


def test_tables_cover_the_grid_with_sources(run: Path) -> None:
    tables = run / "results" / "tables"
    table1 = pd.read_parquet(tables / "table1.parquet")
    assert sorted(table1.trainset) == ["bright-100", "bright-50", "none-100", "none-50", "real"]
    assert (table1.n_folds == 2).all()
    for sources in table1.sources:
        assert all((run / s).is_file() for s in sources.split(";"))
    table2 = pd.read_csv(tables / "table2.csv")
    assert list(table2.trainset)[0] == "real" and len(table2) == 2
    assert (tables / "table3.md").read_text().startswith("Table 3")
    figures = run / "results" / "figures"
    assert (figures / "fig1a_phantom_real_only_on_synthetic.png").stat().st_size > 0
    assert (figures / "fig2_phantom_gradcam_squeezenet1_1_fold0.png").stat().st_size > 0


def test_every_fold_chose_a_trained_rank(run: Path) -> None:
    for fold in (0, 1):
        selection = run / f"results/quality/phantom/fold{fold}/rank_selection.json"
        chosen = json.loads(selection.read_text())
        assert chosen["rank"] in (2, 4) and chosen["metric"].startswith("fd_")


def test_table_provenance_hashes_its_inputs(run: Path) -> None:
    table = run / "results" / "tables" / "table1.parquet"
    record = json.loads(provenance.sidecar(table).read_text())
    assert record["rule"] == "table1"
    for item in record["inputs"]["metrics"]:
        assert item["sha256"] == provenance.file_sha256(run / item["path"])
    lineage = audit("results/tables/table1.parquet", str(run))
    assert "rule train_lora" in lineage and "rule fetch_dataset" in lineage
    assert "results/raw/phantom\n  rule fetch_dataset" in lineage


def test_a_cell_after_the_grid_needs_one_job_and_reruns_are_no_ops(run: Path) -> None:
    assert planned_jobs(run, config=TINY) == {}
    assert planned_jobs(run, CELL, config=TINY) == {"table1_cell": 1}
    done = snakemake(run, CELL, config=TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    cell = json.loads((run / CELL).read_text())
    assert len(cell["per_fold"]) == 2
