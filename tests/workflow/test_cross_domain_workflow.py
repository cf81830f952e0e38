"""Cross-domain adaptation in the workflow: a tiny run of the table, its outputs, its provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from diffusers import UNet2DConditionModel

from meddap.run.audit import audit
from tests.snakemake_runner import planned_jobs, snakemake

TABLE = "results/tables/cross_domain_table.parquet"
TARGET = "results/{kind}/phantom_external/fold0"
TINY = {
    "folds": {"k": 2},
    "datasets": {"phantom_external": {"phantom": {"patients": 16, "image_size": 64}}},
    "synthesis": {"sampling": {"steps": 2, "batch_size": 16}},
    "classifier": {"training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None}},
    "cross_domain": {"ranks": [2], "epochs": 1},
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("cross")
    run = snakemake(workdir, TABLE, config=TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def test_the_table_has_a_row_per_adaptation_from_its_own_records(ran: Path) -> None:
    table = pd.read_parquet(ran / TABLE)
    assert table.adaptation.tolist() == ["none", "r2", "full"]
    assert (table.target == "phantom_external").all() and (table.n_folds == 1).all()
    assert table.params.iloc[0] == 0 and 0 < table.params.iloc[1] < table.params.iloc[2]
    fd = [c for c in table.columns if c.startswith("fd_") and c.endswith("_real_only")]
    assert fd and table[fd[0]].gt(0).all()
    for sources in table.sources:
        assert all((ran / s).is_file() for s in sources.split(";"))


def test_full_finetuning_writes_a_unet_that_synthesis_loads(ran: Path) -> None:
    lora = Path(ran / TARGET.format(kind="lora"))
    params = json.loads((lora / "full" / "params.json").read_text())
    unet = UNet2DConditionModel.from_pretrained(lora / "full" / "unet")
    assert params["trainable"] == params["total"] == sum(p.numel() for p in unet.parameters())
    synth = pd.read_parquet(ran / TARGET.format(kind="synth") / "full/none/manifest.parquet")
    assert set(synth["rank"]) == {"full"} and synth.lora_sha256.notna().all()
    base = pd.read_parquet(ran / TARGET.format(kind="synth") / "r0/none/manifest.parquet")
    assert synth.label.tolist() == base.label.tolist()  # the same size and class order


def test_audit_traces_the_full_row_to_the_target_dataset(ran: Path) -> None:
    lineage = audit(TARGET.format(kind="quality") + "/full/none.json", str(ran))
    assert "rule finetune_unet" in lineage and "rule encode_fold" in lineage
    assert "results/raw/phantom_external" in lineage


def test_a_new_rank_adds_only_its_adaptation(ran: Path) -> None:
    more = {**TINY, "cross_domain": {**TINY["cross_domain"], "ranks": [2, 4]}}
    assert planned_jobs(ran, TABLE, config=more) == {
        "train_lora": 1,
        "synthesize": 1,
        "quality": 1,
        "cross_domain_table": 1,
    }
