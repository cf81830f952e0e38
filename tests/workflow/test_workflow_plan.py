"""Dry runs: what a target plans (single cells build only what they need)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.snakemake_runner import REPO, planned_jobs, snakemake


def test_a_table1_cell_plans_only_its_own_jobs(tmp_path: Path) -> None:
    cell = "results/cells/table1/squeezenet1_1/bright/100.json"
    jobs = planned_jobs(tmp_path, cell, case="fixed-rank")  # rank 2: no rank-choice checkpoint
    folds = 3
    assert jobs == {
        "fetch_dataset": 2,  # phantom and the external phantom every classifier is scored on
        "fingerprint_source": 2,
        "fingerprint_model": 1,  # the shipped generator, hashed once for every job that loads it
        "ingest": 2,
        "find_duplicates": 1,
        "curate": 1,
        "split_folds": 1,
        "encode_fold": folds,
        "train_lora": folds,  # rank 2 only
        "synthesize": folds,  # the 'bright' set only
        "quality": folds,
        "train_classifier": 2 * folds,  # r2-bright-100, and real-only for the quality features
        "table1_cell": 1,
    }


def test_the_default_grid_plans_every_fold_and_rank(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path)
    cross = 1  # cross_domain: rank 4 on phantom_external's fold 0 (and its r0 set)
    assert jobs["train_lora"] == 3 * 2 + cross and jobs["encode_fold"] == 3 + 1
    assert jobs["select_rank"] == 3
    assert jobs["synthesize"] == 3 * 2 + cross + 1  # 'none' per rank, pre-choice


def test_rank_0_adds_the_base_models_sets_and_classifiers_without_a_lora(tmp_path: Path) -> None:
    """The default ranks [0, 2, 4] with rank 2 fixed: Table 1 gets r0 rows beside r2's."""
    jobs = planned_jobs(tmp_path, case="fixed-rank")
    folds, adjectives, ratios = 3, 2, 1
    cross = 1  # the cross-domain table's LoRA (rank 4) on phantom_external's fold 0
    assert jobs["train_lora"] == folds * 2 + cross  # ranks 2 and 4; none for the base model
    assert jobs["synthesize"] == folds * adjectives * 2 + cross + 1  # r0 and r2; target r0, r4
    assert jobs["quality"] == folds * adjectives * 2 + cross + 1
    assert jobs["train_classifier"] == folds * (1 + 2 * adjectives * ratios) + 1  # target's real
    assert jobs["evaluate_on_synthetic"] == folds * adjectives * 2
    assert "build_tiny_sd" not in jobs  # the default generator is shipped in resources/


def test_the_cross_domain_table_plans_only_the_targets_adaptations(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, "results/tables/cross_domain_table.md")
    ranks = 1  # cross_domain.ranks [4]; fold 0 of phantom_external only
    assert jobs == {
        "fetch_dataset": 1,  # phantom_external: the grid's own dataset is not needed
        "fingerprint_source": 1,
        "fingerprint_model": 1,
        "ingest": 1,
        "find_duplicates": 1,
        "curate": 1,
        "split_folds": 1,
        "encode_fold": 1,
        "train_lora": ranks,
        "finetune_unet": 1,
        "synthesize": ranks + 1,  # and the base generator's (rank 0, "none")
        "synthesize_full": 1,
        "quality": ranks + 1,
        "quality_full": 1,
        "train_classifier": 1,  # the target's real-only classifier: the in-domain features
        "cross_domain_table": 1,
    }


def test_classifiers_on_the_masked_sets_join_the_ratio_table_only_when_asked(
    tmp_path: Path,
) -> None:
    table = "results/tables/seg_ratio_table.md"
    assert "train_classifier" not in planned_jobs(tmp_path, table)  # default: Dice only
    on = {"segmentation": {"pairs": {"classifiers": True, "ratios": ["1:1", "1:2", "0:1"]}}}
    jobs = planned_jobs(tmp_path, table, config=on)
    folds, settings, ratios = 3, 2, 2  # 0:1 has no normal image: segmenters only
    assert jobs["train_classifier"] == folds * (1 + settings * ratios)  # and the real-only ones
    assert jobs["train_segmenter"] == folds * (1 + settings * 3 + 3)  # + mask-real's mixed sets


def test_an_edge_model_is_an_input_of_the_edge_jobs_only(tmp_path: Path) -> None:
    model = tmp_path / "hed.pt"
    model.write_bytes(b"a TorchScript file")
    synthesis = {"settings": ["edge-real", "mask-real"], "edge_model": str(model)}
    config = {"segmentation": {"pairs": synthesis}}
    pools = [f"results/pairs/phantom/fold0/{s}/manifest.parquet" for s in synthesis["settings"]]
    run = snakemake(tmp_path, *pools, config=config, extra=("-n",))
    assert run.returncode == 0, run.stderr
    reads = {}  # (rule, output) -> whether the job reads the edge model
    for job in run.stdout.split("\nrule ")[1:]:
        rule, lines = job.split(":")[0], job.splitlines()
        field = {line.split(":")[0].strip(): line for line in lines if ":" in line}
        if rule in ("train_controlnet", "synthesize_pairs"):
            reads[rule, "edge" in field["output"]] = str(model) in field["input"]
    assert reads == {
        ("train_controlnet", True): True,
        ("train_controlnet", False): False,
        ("synthesize_pairs", True): True,
        ("synthesize_pairs", False): False,
    }
    model.unlink()
    run = snakemake(tmp_path, *pools, config=config, extra=("-n",))
    assert run.returncode != 0 and str(model) in run.stdout + run.stderr


def test_fig2_chooses_among_the_chosen_ranks_classifiers_not_the_base_models(
    tmp_path: Path,
) -> None:
    """Table 2 has no r0 rows, so Fig. 2's candidates are rank 2's sets only (one per setting)."""
    figure = "results/figures/fig2_phantom_gradcam_squeezenet1_1_fold0.png"
    run = snakemake(tmp_path, figure, case="fixed-rank", extra=("-n",))
    assert run.returncode == 0, run.stderr
    job = run.stdout.split("rule figure_2:")[1].split("output:")[0]
    weights = [w for w in job.split("input:")[1].split(", ") if w.strip().endswith(".safetensors")]
    augmented = [w for w in weights if "/real/" not in w]
    assert len(augmented) == 2 * 1  # adjectives x ratios
    assert all("/r2-" in w for w in augmented), augmented


def test_the_paper_grid_plans_every_cell(tmp_path: Path) -> None:
    """5 folds x 3 ranks x 10 adjectives x 3 ratios x 3 models (a fixed rank shows it all), and
    the classifiers on the 4 mask-conditioned settings' 1:k sets (4 ratios; never 0:1)."""
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    jobs = planned_jobs(tmp_path, config={**paper, "synthesis": {**paper["synthesis"], "rank": 4}})
    folds, ranks, adjectives, ratios, models = 5, 3, 10, 3, 3
    pair_sets = 4 * 4
    assert jobs["train_lora"] == folds * ranks
    assert jobs["synthesize"] == folds * adjectives  # the fixed rank's sets
    assert jobs["train_classifier"] == folds * models * (1 + adjectives * ratios + pair_sets)
    assert jobs["evaluate_on_synthetic"] == folds * models * adjectives
    assert jobs["ledger"] == 1 and jobs["table1"] == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "results/cells/table1/resnet50/bright/100.json",
            "'resnet50' is not in config key 'classifier.models'",
        ),
        ("results/cells/table1/squeezenet1_1/dark/100.json", "config key 'synthesis.adjectives'"),
        ("results/cells/table1/squeezenet1_1/bright/75.json", "config key 'synthesis.ratios'"),
        ("results/cells/table1/squeezenet1_1/bright/abc.json", "config key 'synthesis.ratios'"),
        (
            "results/cells/seg/unet/mask-real-3to1/test.json",
            "'mask-real-3to1' is not in config key 'segmentation.trainsets'",
        ),
        (
            "results/cells/multitask/foo/seg/pr-no.json",
            "'foo' is not in config key 'multitask.backbones'",
        ),
        (
            "results/cells/multitask/dsunet-s4/mt-l0.85-do/pr-maybe.json",
            "pr-maybe is neither pr-yes (with prediction refining) nor pr-no",
        ),
        (
            "results/cls/phantom/fold0/squeezenet1_1/r2-bright-300/metrics.json",
            "ratio 300% exceeds config key 'synthesis.pool' (100%)",
        ),
        (
            "results/cls/phantom/fold0/resnet50/real/metrics.json",
            "'resnet50' is not one of the models of config key 'classifier.models'",
        ),
    ],
)
def test_off_grid_targets_stop_before_any_job_is_planned(
    tmp_path: Path, target: str, message: str
) -> None:
    run = snakemake(tmp_path, target, extra=("-n",))
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert "Job stats" not in run.stdout


@pytest.mark.parametrize(
    ("target", "config", "message"),
    [
        (
            "results/cls/phantom/fold5/squeezenet1_1/real/metrics.json",
            None,
            "fold 5 of dataset phantom does not exist with config key 'folds.k' = 3",
        ),
        (
            "results/cls/phantom/fold-1/squeezenet1_1/real/metrics.json",
            None,
            "fold -1 of dataset phantom does not exist with config key 'folds.k' = 3",
        ),
        (  # the check reached through another rule's input (score_segmenter <- train_segmenter)
            "results/seg/phantom/foldx/unet/real/metrics.json",
            None,
            "fold x of dataset phantom does not exist with config key 'folds.k' = 3",
        ),
        (
            "results/figures/samples_phantom_fold01.png",
            None,
            "fold 01 of dataset phantom does not exist with config key 'folds.k' = 3",
        ),
        (
            "results/seg/phantom/fold0/unet/mask-real-1to2/metrics.json",
            {"segmentation": {"pairs": {"pool": 1, "ratios": ["1:1"]}}},
            "trainset mask-real-1to2 needs 2 synthetic pairs per real image, but config key "
            "'segmentation.pairs.pool' generates 1",
        ),
        (
            "results/tables/table3.md",
            {"classifier": {"external": []}},
            "config key 'classifier.external' is []",
        ),
    ],
)
def test_what_a_job_would_find_late_stops_when_the_plan_is_built(
    tmp_path: Path, target: str, config: dict | None, message: str
) -> None:
    run = snakemake(tmp_path, target, config=config, extra=("-n",))
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert "Job stats" not in run.stdout


def test_no_external_classifier_sets_leave_table3_out_of_the_default_target(tmp_path: Path) -> None:
    jobs = planned_jobs(tmp_path, config={"classifier": {"external": []}})
    assert "table3" not in jobs and jobs["table2"] == 1
