"""The segmentation track in the workflow: what dry runs plan, and what a grid edit adds."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.snakemake_runner import REPO, planned_jobs, snakemake

TABLE = "results/tables/seg_table.md"
ABLATION = "results/tables/seg_ablation.md"
TINY = {
    "folds": {"k": 2},
    "datasets": {
        "phantom": {"phantom": {"patients": 12}},
        "phantom_external": {"phantom": {"patients": 4}},
    },
    "segmentation": {
        "training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None},
        "image_size": 32,
        "channels": [4, 4, 8, 8, 8],
        "pairs": {"settings": []},  # the synthetic pairs' own test: test_pairs_workflow
    },
}
PHANTOM_B = {
    "patients": 4,
    "image_size": 64,
    "duplicates": 0,
    "conflicting": 0,
    "second_mask_fraction": 0.1,
}


def test_the_default_plans_every_fold_model_and_trainset(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, TABLE)
    # folds x unet x (real, 1 augmentation, 2 settings x 1 ratio, mask-real's ratio x 1
    # patch-mixing point (lambda 0.5, p 4): mask-clinical has no real parents to mix)
    runs = 3 * 1 * (2 + 2 * 1 + 1 * 1)
    assert jobs["train_segmenter"] == runs and jobs["seg_table"] == 1
    assert jobs["train_controlnet"] == 3 and jobs["synthesize_pairs"] == 3 * 2
    assert jobs["score_segmenter"] == runs and jobs["segmenter_metrics"] == runs  # one external
    assert "train_lora" not in jobs and "train_classifier" not in jobs  # nothing of the others


def test_the_paper_grid_plans_every_model_and_augmentation(tmp_path: Path) -> None:
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    jobs = planned_jobs(
        tmp_path, TABLE, config={**paper, "synthesis": {**paper["synthesis"], "rank": 4}}
    )
    # folds x models x (real + 9 augmentations + 4 settings (text-clinical too) x 5 ratios + the
    # 2 real-mask settings (mask-real, edge-real) x 5 ratios x 3 lambdas x 1 patch grid, mixed)
    assert jobs["train_segmenter"] == 5 * 4 * (10 + 4 * 5 + 2 * 5 * 3 * 1)
    # text-clinical samples without a ControlNet: still 2 conditions x folds trained
    assert jobs["train_controlnet"] == 5 * 2 and jobs["synthesize_pairs"] == 5 * 4
    planned = planned_jobs(tmp_path, ABLATION, config={**paper, "synthesis": {"rank": 4}})
    assert planned["train_segmenter"] == 5 * 5 and planned["seg_ablation"] == 1  # dsunet x real


def test_an_unknown_segmenter_stops_before_planning(tmp_path: Path) -> None:
    run = snakemake(tmp_path, "results/seg/phantom/fold0/resnet34/real/metrics.json", extra=("-n",))
    assert (
        run.returncode != 0
        and "target segmenter 'resnet34' is not one of" in run.stdout + run.stderr
    )


def test_dsunet_names_plan_the_ablation_and_unknown_ones_stop(tmp_path: Path) -> None:
    ablation = {"segmentation": {"ablation": ["dsunet-s1", "dsunet-s4-adv"]}}
    jobs = planned_jobs(tmp_path, ABLATION, config=ablation)
    assert jobs["train_segmenter"] == 3 * 2 and jobs["seg_ablation"] == 1  # folds x dsunet x real
    assert "seg_table" not in jobs
    default = planned_jobs(tmp_path, config=ablation)  # the default targets gain only the ablation
    cell = planned_jobs(tmp_path, "results/cells/seg/dsunet-s1/real/test.json", config=ablation)
    assert cell["train_segmenter"] == 3 and cell["seg_cell"] == 1  # an ablation row is a cell too
    # folds x (2 trainsets + 2 ratio sets + 1 mixed set + 2 ablation dsunets on real)
    assert default["train_segmenter"] == 3 * (2 + 2 + 1 + 2) and default["seg_ablation"] == 1
    target = "results/seg/phantom/fold0/dsunet-s5-adv/aug-mirror/metrics.json"
    run = snakemake(tmp_path, target, extra=("-n",))
    assert run.returncode != 0
    assert "'dsunet-s5-adv' is not one of the models of config key 'segmentation.models'" in (
        run.stdout + run.stderr
    )


def test_a_new_augmentation_model_or_external_set_schedules_only_its_jobs(tmp_path: Path) -> None:
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
            "trainsets": ["real", "aug-deepstack", "aug-gamma"],
        },
    }
    new = {"train_segmenter": 2, "score_segmenter": 2, "segmenter_metrics": 2, "seg_table": 1}
    assert planned_jobs(tmp_path, TABLE, config=added) == new
    added["segmentation"]["models"] = ["unet", "attention_unet"]
    runs = 2 + 2 * 3
    new = {"train_segmenter": runs, "score_segmenter": runs, "segmenter_metrics": runs}
    assert planned_jobs(tmp_path, TABLE, config=added) == {**new, "seg_table": 1}
    phantom_b = {"layout": "busi", "phantom": {**PHANTOM_B, "seed": 7}}
    external = {**TINY, "datasets": {**TINY["datasets"], "phantom_b": phantom_b}}
    sets = ["phantom_external", "phantom_b"]
    external["segmentation"] = {**TINY["segmentation"], "external": sets}
    runs = 2 * 2  # every trained segmenter is scored on the new set; none is retrained
    data = {"fetch_dataset": 1, "fingerprint_source": 1, "ingest": 1}
    new = {"score_segmenter": runs, "segmenter_metrics": runs, "seg_table": 1}
    assert planned_jobs(tmp_path, TABLE, config=external) == {**data, **new}


def test_a_segmentation_cell_plans_only_its_row_and_the_real_set(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, "results/cells/seg/unet/aug-deepstack/phantom_external.json")
    assert jobs["train_segmenter"] == 3 * 2 and jobs["seg_cell"] == 1  # folds x (the row, real)
    assert not {"seg_table", "train_lora", "train_classifier", "build_tiny_sd"} & set(jobs)
    run = snakemake(tmp_path, "results/cells/seg/unet/aug-gamma/test.json", extra=("-n",))
    assert run.returncode != 0
    assert "'aug-gamma' is not in config key 'segmentation.trainsets'" in run.stdout + run.stderr
