"""The multi-task track (MTL) in the workflow: plans, a tiny run, cells, grid edits."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.snakemake_runner import REPO, planned_jobs, snakemake

TABLE = "results/tables/multitask_table5.md"
TINY = {
    "folds": {"k": 2},
    "datasets": {"phantom": {"phantom": {"patients": 12}}},
    "multitask": {
        "backbones": ["unetpp_ds"],  # the default's is dsunet-s4 (.test/full.yaml runs it)
        "modes": ["seg", "cls", "combined", "mt-l0.5-do"],
        "training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None},
        "image_size": 32,
        "channels": [4, 4, 8, 8, 8],
        "head_width": 8,
        "head_hidden": 4,
    },
}


def test_the_default_plans_multitask_with_do_and_pr_against_single_task_seg(
    tmp_path: Path,
) -> None:
    jobs = planned_jobs(tmp_path, TABLE)
    folds = 3
    assert jobs["train_multitask"] == folds * 2  # seg and mt-l0.85-do
    assert jobs["refine_predictions"] == folds  # only mt-l0.85-do predicts class and mask
    assert jobs["multitask_metrics"] == folds * 2 and jobs["multitask_table"] == 1
    assert not {"train_lora", "train_classifier", "train_segmenter"} & set(jobs)


def test_the_paper_grid_plans_table_5(tmp_path: Path) -> None:
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config = {**paper, "synthesis": {**paper["synthesis"], "rank": 4}}
    jobs = planned_jobs(tmp_path, TABLE, config=config)
    folds, backbones = 5, 2
    assert jobs["train_multitask"] == folds * backbones * 7  # seg, cls, 3 mt-* each ± do
    assert jobs["combine_single_task"] == folds * backbones * 2  # combined, combined-do
    assert jobs["refine_predictions"] == folds * backbones * 5  # 2 combined + 3 mt-*


def test_a_tiny_run_scores_every_mode_and_cells_and_new_modes_add_only_their_jobs(
    tmp_path: Path,
) -> None:
    run = snakemake(tmp_path, TABLE, "results/tables/multitask_per_class.md", config=TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    fold = tmp_path / "results/multitask/phantom/fold1/unetpp_ds"
    combined = json.loads((fold / "combined/metrics.json").read_text())
    assert combined["pr"]["incoherence_rate"] == 0.0 and combined["raw"]["accuracy"] is not None
    assert not (fold / "seg/predictions_pr.npz").exists()
    record = json.loads((fold / "combined/metrics.json.prov.json").read_text())
    assert "combined/predictions_pr.npz" in json.dumps(record["inputs"])  # PR is a recorded input
    table = (tmp_path / TABLE).read_text()
    assert "| unetpp_ds | combined | combined | no | n/a | yes |" in table
    cell = "results/cells/multitask/unetpp_ds/mt-l0.5-do/pr-yes.json"
    assert planned_jobs(tmp_path, cell, config=TINY) == {"multitask_cell": 1}
    added = {
        **TINY,
        "multitask": {**TINY["multitask"], "modes": [*TINY["multitask"]["modes"], "mt-l0.85"]},
    }
    new = {"train_multitask": 2, "refine_predictions": 2, "multitask_metrics": 2}
    assert planned_jobs(tmp_path, TABLE, config=added) == {**new, "multitask_table": 1}
    off_grid = snakemake(
        tmp_path, "results/cells/multitask/unetpp_ds/seg/pr-yes.json", config=TINY, extra=("-n",)
    )
    assert off_grid.returncode != 0 and "has no PR row" in off_grid.stdout + off_grid.stderr
