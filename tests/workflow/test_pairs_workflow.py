"""The mask-conditioned synthesis track in the workflow: a tiny run, its outputs, grid edits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.snakemake_runner import planned_jobs, snakemake

TABLE = "results/tables/seg_ratio_table.md"
FIGURE = "results/figures/clinical_masks_phantom_fold0.png"
SETTINGS = ["mask-clinical", "mask-real"]
QUALITY = [f"results/quality/phantom/fold{f}/pairs/{s}.json" for f in (0, 1) for s in SETTINGS]
TINY = {
    "folds": {"k": 2},
    "datasets": {
        "phantom": {"phantom": {"patients": 12}},
        "phantom_external": {"phantom": {"patients": 4}},
    },
    "classifier": {"training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None}},
    "segmentation": {
        "trainsets": ["real"],
        "training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None},
        "image_size": 32,
        "channels": [4, 4, 8, 8, 8],
        "pairs": {
            "settings": SETTINGS,
            "ratios": ["1:1"],
            "classifiers": True,
            "training": {"steps": 2, "batch_size": 4},
            "sampling": {"steps": 2, "batch_size": 8},
        },
    },
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("masked")
    run = snakemake(workdir, TABLE, FIGURE, *QUALITY, config=TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def test_pools_hold_aligned_masks_conditions_and_prompts(ran: Path) -> None:
    splits = pd.read_parquet(ran / "results/data/phantom/splits.parquet")
    for setting in SETTINGS:
        pool = pd.read_parquet(ran / f"results/pairs/phantom/fold0/{setting}/manifest.parquet")
        fit = json.loads((ran / "results/seg/phantom/fold0/unet/real/fit.json").read_text())
        assert len(pool) == 2 * fit["n_train"] and list(pool["index"]) == list(range(len(pool)))
        assert set(pool["mask_source"]) == {setting.split("-")[1]} and set(pool["fold"]) == {0}
        assert pool["prompt"].str.contains("echogenicity and").all()  # attribute prompts
        for row in pool.head(4).itertuples():
            mask = np.asarray(Image.open(row.mask_path))
            assert set(np.unique(mask)) <= {0, 255} and mask.any()
            assert Image.open(row.image_path).size == (64, 64)
            assert Path(row.condition_path).is_file()
    real = pd.read_parquet(ran / "results/pairs/phantom/fold0/mask-real/manifest.parquet")
    train = splits[(splits["fold"] == 0) & (splits["split"] == "train")]["id"].astype(str)
    assert set(real["parent_id"]) <= set(train)  # parents are train images only


def test_quality_has_mask_fidelity_and_segmenters_train_on_the_prefix(ran: Path) -> None:
    for path in QUALITY:
        fidelity = json.loads((ran / path).read_text())["mask_fidelity"]
        assert 0 <= fidelity["mean"] <= 1 and fidelity["n"] > 0
        assert fidelity["segmenter"]["trainset"] == "real"
    fit = json.loads((ran / "results/seg/phantom/fold1/unet/mask-real-1to1/fit.json").read_text())
    assert fit["n_synthetic"] == fit["n_real"] > 0
    table = pd.read_parquet(ran / "results/tables/seg_ratio_table.parquet")
    assert list(table["setting"]) == ["-", *SETTINGS, "mask-real"]  # and its patch-mixed row
    assert list(table["mixing"]) == ["-", "-", "-", "λ=0.5 p=4"]  # the default mixing point
    assert table["chosen_on_val"].sum() == 3  # the only ratio of each setting and mixing
    auc = table["auc_squeezenet1_1_test"]  # the classifiers on the same sets; none mixed
    assert (
        list(auc == "n/a") == [False, False, False, True]
        and table["auc_squeezenet1_1_val_pick"].sum() == 2
    )
    record = ran / "results/cls/phantom/fold0/squeezenet1_1/mask-clinical-1to1/metrics.json"
    cls = json.loads(record.read_text())
    lesions = json.loads((ran / "results/seg/phantom/fold0/unet/real/fit.json").read_text())
    assert cls["n_train_synthetic"] == lesions["n_train"] > 0  # 1 pair per train lesion
    mixed = "results/seg/phantom/fold1/unet/mask-real-1to1-mix0.5p4/fit.json"
    assert json.loads((ran / mixed).read_text())["mixing"]["lambda"] == 0.5
    assert Image.open(ran / FIGURE).size[0] > 400  # 2 classes x 3 sizes x 2 pairs


def test_a_new_ratio_adds_only_its_segmenters_and_a_too_large_one_stops(ran: Path) -> None:
    assert planned_jobs(ran, TABLE, *QUALITY, config=TINY) == {}
    synthesis = {**TINY["segmentation"]["pairs"], "ratios": ["1:1", "0:1"]}
    added = {**TINY, "segmentation": {**TINY["segmentation"], "pairs": synthesis}}
    runs = 2 * (2 + 1)  # folds x (settings + mask-real's mixed set); 0:1 trains no classifier
    new = {"train_segmenter": runs, "score_segmenter": runs, "segmenter_metrics": runs}
    assert planned_jobs(ran, TABLE, config=added) == {**new, "seg_ratio_table": 1}
    synthesis["ratios"] = ["1:4"]
    run = snakemake(ran, TABLE, config=added, extra=("-n",))
    assert run.returncode != 0
    assert "'segmentation.pairs.ratios': 1:4 needs more synthetic pairs" in run.stdout + run.stderr
