"""The segmentation track in the workflow: what dry runs plan, and what a new augmentation adds."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.snakemake_runner import REPO, planned_jobs, snakemake

TABLE = "results/tables/seg_table.md"
TINY = {
    "folds": {"k": 2},
    "datasets": {
        "phantom": {"phantom": {"patients": 12}},
        "phantom_external": {"phantom": {"patients": 4}},
    },
    "segmentation": {"epochs": 1, "image_size": 32, "channels": [4, 4, 8, 8, 8]},
}


def test_the_default_plans_every_fold_model_and_trainset(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, TABLE)
    assert jobs["train_segmenter"] == 3 * 1 * 3 and jobs["seg_table"] == 1  # folds x unet x sets
    assert "train_lora" not in jobs and "train_classifier" not in jobs  # nothing of the others


def test_the_paper_grid_plans_every_model_and_augmentation(tmp_path: Path) -> None:
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    jobs = planned_jobs(
        tmp_path, TABLE, config={**paper, "synthesis": {**paper["synthesis"], "rank": 4}}
    )
    assert jobs["train_segmenter"] == 5 * 4 * 10  # folds x models x (real + 9 augmentations)


def test_an_unknown_segmenter_stops_before_planning(tmp_path: Path) -> None:
    run = snakemake(tmp_path, "results/seg/phantom/fold0/resnet34/real/metrics.json", extra=("-n",))
    assert (
        run.returncode != 0
        and "target segmenter 'resnet34' is not one of" in run.stdout + run.stderr
    )


def test_a_new_augmentation_or_model_schedules_only_its_segmenters(tmp_path: Path) -> None:
    run = snakemake(tmp_path, TABLE, config=TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        tmp_path / "results/seg/phantom/fold1/unet/aug-deepstack/metrics.json.prov.json"
    ).is_file()
    assert planned_jobs(tmp_path, TABLE, config=TINY) == {}
    added = {
        **TINY,
        "segmentation": {
            **TINY["segmentation"],
            "trainsets": ["real", "aug-mirror", "aug-deepstack", "aug-gamma"],
        },
    }
    assert planned_jobs(tmp_path, TABLE, config=added) == {"train_segmenter": 2, "seg_table": 1}
    added["segmentation"]["models"] = ["unet", "attention_unet"]
    jobs = planned_jobs(tmp_path, TABLE, config=added)
    assert jobs == {"train_segmenter": 2 + 2 * 4, "seg_table": 1}
