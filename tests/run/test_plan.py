"""meddap.run.plan: which results a config asks for, without running Snakemake."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from meddap.common.errors import MeddapError
from meddap.run import plan
from meddap.trainsets import CLASSIFIER, SEGMENTER, WILDCARDS, planned
from tests.conftest import REPO

SEG_ROWS = [  # the fixture's trainsets, then settings x ratios, then mask-real's mixed sets
    "real",
    "aug-mirror",
    "aug-deepstack",
    "mask-clinical-1to1",
    "mask-clinical-1to2",
    "mask-real-1to1",
    "mask-real-1to2",
    "mask-real-1to1-mix0.5p4",
    "mask-real-1to2-mix0.5p4",
]


@pytest.fixture
def config() -> dict:
    """The default config with a richer grid than its own, so every axis has two points."""
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["synthesis"]["ratios"] = [50, 100]
    config["cross_domain"]["ranks"] = [2, 4, 8]
    config["segmentation"]["trainsets"] = ["real", "aug-mirror", "aug-deepstack"]
    config["segmentation"]["pairs"]["ratios"] = ["1:1", "1:2"]
    config["multitask"]["backbones"] = ["unetpp_ds"]
    return config


def test_the_default_targets_are_every_stage_s_in_order(config: dict) -> None:
    targets = plan.stage_targets(config)
    assert len([t for t in targets if t.startswith("results/lora/")]) == 3 * 2  # folds x ranks 2, 4
    assert len([t for t in targets if t.endswith("rank_selection.json")]) == 3
    assert len([t for t in targets if "/pairs/" in t]) == 3 * 2  # folds x settings
    tables = [re.sub(r"results/tables/(\w+)\.md", r"\1", t) for t in plan.summary_tables(config)]
    assert tables == [
        "table1",
        "table2",
        "table3",
        "seg_table",
        "seg_ratio_table",
        "multitask_table5",
        "multitask_per_class",
        "cross_domain_table",
    ]
    assert set(plan.summary_tables(config)) <= set(targets)


def test_switched_off_stages_plan_nothing(config: dict) -> None:
    config["segmentation"]["models"] = []
    config["classifier"]["external"] = []
    config["multitask"]["modes"] = []
    config["cross_domain"]["targets"] = []
    targets = plan.stage_targets(config)
    assert plan.summary_tables(config) == ["results/tables/table1.md", "results/tables/table2.md"]
    assert not [t for t in targets if "/pairs/" in t or "seg_" in t or "clinical" in t]
    assert plan.seg_trainsets(config) == ["real", "aug-mirror", "aug-deepstack"]
    assert plan.pairs_conditions(config) == []


def test_segmenter_rows_are_listed_sets_then_pairs_then_mixed_pairs(config: dict) -> None:
    assert plan.seg_trainsets(config) == SEG_ROWS
    assert plan.pairs_conditions(config) == ["mask"]
    config["segmentation"]["pairs"]["mixing"]["lambdas"] = []
    assert plan.seg_trainsets(config) == SEG_ROWS[:-2]


def test_classifiers_join_the_pairs_only_when_asked_and_never_mixed_or_synthetic_only(
    config: dict,
) -> None:
    assert plan.pair_trainsets(config, CLASSIFIER) == [] and plan.ratio_cls_metrics(config) == []
    config["segmentation"]["pairs"]["classifiers"] = True
    config["segmentation"]["pairs"]["ratios"] = ["1:1", "0:1"]
    assert plan.pair_trainsets(config, CLASSIFIER) == ["mask-clinical-1to1", "mask-real-1to1"]
    runs = plan.ratio_cls_metrics(config)
    assert len(runs) == 3 * 1 * 3 and "/squeezenet1_1/real/" in runs[0]  # folds x model x sets


def test_every_planned_set_matches_its_job_s_wildcard_and_checks(config: dict) -> None:
    config["segmentation"]["pairs"]["classifiers"] = True
    for task, names in (
        (SEGMENTER, plan.seg_trainsets(config)),
        (CLASSIFIER, plan.fold_trainsets(config, [0, 2]) + plan.pair_trainsets(config, CLASSIFIER)),
    ):
        for name in names:
            assert re.fullmatch(WILDCARDS[task], name), (task, name)
            planned(name, config, task)


def test_classifier_sets_of_a_fold_are_real_then_each_rank_adjective_ratio(config: dict) -> None:
    assert plan.fold_ranks(config, 2) == [0, 2]  # lora.ranks holds 0: the base model's row
    assert plan.fold_trainsets(config, [0, 2]) == [
        "real",
        *(f"r{k}-{a}-{r}" for k in (0, 2) for a in ("none", "bright") for r in (50, 100)),
    ]
    metrics = plan.cls_metrics(config, lambda fold: [2])
    assert len(metrics) == 3 * 1 * 5  # folds x models x (real + 2 adjectives x 2 ratios)
    assert plan.augmented_trainsets(config, 4) == [
        "r4-none-50",
        "r4-none-100",
        "r4-bright-50",
        "r4-bright-100",
    ]
    config["classifier"]["external"] = []
    with pytest.raises(MeddapError, match="'classifier.external' is \\[\\]"):
        plan.external_metrics(config, lambda fold: [2])


def test_cells_stop_off_the_grid_naming_their_key(config: dict) -> None:
    keys = {"model": "squeezenet1_1", "adjective": "dark", "ratio": "100"}
    with pytest.raises(MeddapError, match="config key 'synthesis.adjectives'"):
        plan.cls_cell_metrics(config, keys, lambda fold: 2)
    cell = plan.cls_cell_metrics(config, {**keys, "adjective": "bright"}, lambda fold: 2)
    assert [c.split("/")[3:6] for c in cell[:1]] == [["fold0", "squeezenet1_1", "r2-bright-100"]]
    seg = {"model": "unet", "trainset": "mask-real-3to1", "evaluated_on": "test"}
    with pytest.raises(MeddapError, match="config key 'segmentation.trainsets'"):
        plan.seg_cell_metrics(config, seg)
    mixed = plan.seg_cell_metrics(config, {**seg, "trainset": "mask-real-1to2-mix0.5p4"})
    assert len(mixed) == 3 * 2  # folds x (the row and real)
    row = {"backbone": "unetpp_ds", "mode": "seg", "pr": "yes"}
    with pytest.raises(MeddapError, match="does not predict both a class and a mask"):
        plan.multitask_cell_metrics(config, row)


def test_multitask_inputs_follow_the_mode(config: dict) -> None:
    keys = {"dataset": "phantom", "fold": "0", "backbone": "unetpp_ds"}
    assert len(plan.multitask_fits({**keys, "mode": "combined-do"})) == 2
    assert plan.refined_predictions({**keys, "mode": "seg"}) == []
    assert len(plan.refined_predictions({**keys, "mode": "mt-l0.85-do"})) == 1
    assert "/seg-do/" in plan.combined_part({**keys, "mode": "combined-do"}, 0)
    assert len(plan.multitask_metrics(config)) == 3 * 1 * 2  # folds x backbones x modes


def test_cross_domain_cells_and_their_settings(config: dict) -> None:
    assert plan.adaptations(config) == ["none", "r2", "r4", "r8", "full"]
    assert len(plan.cross_domain_sets(config)) == 5  # one target, fold 0
    assert len(plan.cross_domain_params(config)) == 4  # none trains nothing
    lora = {"epochs": 1, "rank": 2}
    assert plan.lora_settings(config, lora, "phantom") is lora
    assert (
        plan.lora_settings(config, lora, "phantom_external")["epochs"]
        == config["cross_domain"]["epochs"]
    )
