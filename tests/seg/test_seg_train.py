"""Segmenter training on phantom data: outputs, selection on val Dice, classes, resume, models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open

from meddap.common.errors import MeddapError
from meddap.common.settings import Segmentation, job_params
from meddap.data.ingest import build_manifest
from meddap.data.phantom import generate_phantom
from meddap.report.seg_figures import contour_figure
from meddap.seg.data import fold_rows
from meddap.seg.evaluate import score_segmenter
from meddap.seg.models import build_segmenter, heads
from meddap.seg.registry import SEGMENTERS
from meddap.seg.summary import segmenter_metrics
from meddap.seg.train import train_segmenter
from tests.conftest import PHANTOM, PhantomFold, killed_after

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "classes": "lesions",
    "image_size": 32,
    "channels": [4, 8, 8, 16, 16],
    "training": {"steps": 4, "eval_every": 2, "warmup": 1, "patience": None},
    "batch_size": 8,
    "learning_rate": 1e-2,
    "loss": "dice_ce",
    "augment_probability": 0.5,
    "device": "cpu",
    "mixed_precision": "no",
    "deep_supervision": {"alpha": [1.0, 0.1, 0.1, 0.1], "beta": 0.05, "discriminator_lr": 1e-3},
}
OUTPUTS = ("model.safetensors", "scores.parquet", "fit.json", "metrics.json")
KEYS = ("weights", "scores", "fit_record", "metrics")
SHORT = {"training": {"steps": 2, "eval_every": 2, "warmup": 0, "patience": None}}
SECTION_KEYS = {"dice", "iou", "precision", "recall", "hd95", "assd", "n_images", "undefined"}


@pytest.fixture(scope="module")
def data(phantom_fold: PhantomFold, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The shared phantom fold, and a small shifted phantom (phantom_b) as external set."""
    root = tmp_path_factory.mktemp("seg")
    generate_phantom(root / "phantom_b", patients=4, seed=1, shift={"gain": 1.3}, **PHANTOM)
    external = build_manifest(root / "phantom_b", "phantom_b", "busi", root / "masks_b")
    external.to_parquet(root / "phantom_b.parquet")
    return {
        "manifest": str(phantom_fold.manifest),
        "splits": str(phantom_fold.splits),
        "external": str(root / "phantom_b.parquet"),
    }


def _train(data: dict[str, str], out: Path, **job: object) -> dict:
    """Run the job into `out` (unet, fold 0, real, seed 0 unless given), score it on each
    external set and gather its metrics.json; return that."""
    settings = Segmentation.from_params({**SETTINGS, **job.pop("settings", {})})
    kwargs = {"fold": 0, "model": "unet", "trainset": "real", "seed": 0, **job}
    external = kwargs.pop("external", [data["external"]])
    files = {k: str(out / name) for k, name in zip(KEYS, OUTPUTS, strict=False)}
    train_segmenter(
        manifest=kwargs.pop("manifest", data["manifest"]),
        splits=data["splits"],
        weights=files["weights"],
        scores=files["scores"],
        fit_record=files["fit_record"],
        segmentation=settings,
        **kwargs,
    )
    scored = [str(out / f"external_{k}.parquet") for k in range(len(external))]
    for manifest, scores in zip(external, scored, strict=True):
        job = {"model": kwargs["model"], "segmentation": settings}
        score_segmenter(weights=files["weights"], manifest=manifest, scores=scores, **job)
    segmenter_metrics(
        fit_record=files["fit_record"],
        scores=files["scores"],
        external=scored,
        metrics=files["metrics"],
    )
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def mirror_run(data: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mirror")
    return {"out": out, "metrics": _train(data, out, trainset="aug-mirror")}


def test_outputs_of_a_run(mirror_run: dict) -> None:
    metrics, out = mirror_run["metrics"], mirror_run["out"]
    assert set(metrics) >= {"val", "test", "external", "history", "best_update", "units"}
    assert metrics["units"] == "pixels at 32 px" and metrics["mask_threshold"] == 127
    sections = [metrics["val"], metrics["test"], metrics["external"]["phantom_b"]]
    for section in sections:
        assert set(section) == SECTION_KEYS
        assert set(section["dice"]) == {"mean", "benign", "malignant"}  # lesions: no normals
        assert 0 <= section["dice"]["mean"] <= 1
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.split) == {"val", "test"}
    external = pd.read_parquet(out / "external_0.parquet")
    assert set(external.split) == {"external:phantom_b"}
    assert len(external) == metrics["external"]["phantom_b"]["n_images"]["all"]
    assert "normal" not in set(scores.label)
    assert len(scores[scores.split == "test"]) == metrics["test"]["n_images"]["all"]
    history = metrics["history"]
    best = max(history, key=lambda e: (e["val_dice"], -e["val_loss"]))
    assert metrics["best_update"] == best["update"] and len(history) == 2
    assert metrics["updates"] == 4 and metrics["budget"]["eval_every"] == 2
    assert metrics["val"]["dice"]["mean"] == pytest.approx(best["val_dice"])
    with safe_open(out / "model.safetensors", "pt") as weights:
        meta = json.loads(weights.metadata()["meddap"])
    assert meta["model"] == "unet" and meta["best_update"] == metrics["best_update"]
    assert not (out / "checkpoint.pt").exists()


def test_all_classes_score_normals_with_empty_masks(data: dict[str, str], tmp_path: Path) -> None:
    metrics = _train(data, tmp_path, external=[], settings={"classes": "all", **SHORT})
    assert set(metrics["test"]["dice"]) == {"mean", "benign", "malignant", "normal"}
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    normals = scores[scores.label == "normal"]
    assert (normals.truth_pixels == 0).all() and normals.hd95.isna().all()
    assert metrics["external"] == {}


def test_resumed_run_has_the_bytes_of_an_uninterrupted_one(
    mirror_run: dict, data: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with killed_after(1):
        _train(data, tmp_path, trainset="aug-mirror")
    assert (tmp_path / "checkpoint.pt").is_file()
    assert not [name for name in OUTPUTS if (tmp_path / name).exists()]
    with caplog.at_level("INFO"):
        _train(data, tmp_path, trainset="aug-mirror")
    assert "checkpoint.pt (update 2)" in caplog.text
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (mirror_run["out"] / name).read_bytes(), name
    assert not (tmp_path / "checkpoint.pt").exists()


def test_augmentation_changes_the_run(
    mirror_run: dict, data: dict[str, str], tmp_path: Path
) -> None:
    real = _train(data, tmp_path)
    assert real["history"] != mirror_run["metrics"]["history"]


@pytest.mark.parametrize("name", SEGMENTERS.names())
def test_every_model_segments_and_trains(name: str) -> None:
    torch.manual_seed(0)
    net = build_segmenter(name, SETTINGS["channels"])
    out = heads(net(torch.rand(2, 1, 32, 32)))
    assert len(out) == (4 if name == "unetpp_ds" or name.startswith("dsunet") else 1)
    assert all(head.shape == (2, 1, 32, 32) for head in out)


def test_deep_supervised_unetpp_runs_the_job(data: dict[str, str], tmp_path: Path) -> None:
    metrics = _train(data, tmp_path, model="unetpp_ds", external=[], settings=SHORT)
    assert metrics["model"] == "unetpp_ds" and metrics["test"]["dice"]["mean"] is not None


def test_bad_input_is_named(data: dict[str, str], tmp_path: Path) -> None:
    table = pd.read_parquet(data["manifest"])
    table.loc[table.label == "benign", "mask_path"] = None
    table.to_parquet(tmp_path / "no_masks.parquet")
    with pytest.raises(MeddapError, match="no_masks.parquet.*no mask_path"):
        _train(data, tmp_path / "a", manifest=str(tmp_path / "no_masks.parquet"))
    with pytest.raises(MeddapError, match="'aug-blur'"):
        _train(data, tmp_path / "b", trainset="aug-blur")
    with pytest.raises(MeddapError, match="segmentation.mixed_precision"):
        _train(data, tmp_path / "c", settings={"mixed_precision": "fp16"})


def test_the_job_gets_the_segmentation_section_as_settings() -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    params = job_params(config)["segmentation"]
    assert "models" not in params and "trainsets" not in params  # grid axes are the rules'
    assert Segmentation.from_params(params).image_size == config["segmentation"]["image_size"]


def test_the_contour_figure_shows_each_model_and_names_weights_of_another(
    data: dict[str, str], mirror_run: dict, tmp_path: Path
) -> None:
    weights = str(mirror_run["out"] / "model.safetensors")
    job = {"manifest": data["manifest"], "splits": data["splits"], "trainset": "aug-mirror"}
    job |= {"fold": 0, "per_class": 2, "segmentation": Segmentation.from_params(SETTINGS)}
    figures = [tmp_path / "a.png", tmp_path / "b.png"]
    for figure in figures:
        contour_figure(weights=[weights] * 2, figure=str(figure), models=["unet"] * 2, **job)
    test = fold_rows(data["manifest"], data["splits"], 0, "test", "lesions")
    rows = int(test.groupby("label").size().clip(upper=2).sum())
    with Image.open(figures[0]) as image:
        assert image.size == (320, 160 * rows)  # 1.6 in per panel at 100 dpi
    assert figures[0].read_bytes() == figures[1].read_bytes()
    with pytest.raises(MeddapError, match=r"model\.safetensors holds a segmenter .*'unet'"):
        contour_figure(weights=[weights], figure=str(figures[0]), models=["attention_unet"], **job)
