"""meddap.common: typed settings, the job bridge's typing, split rows and path patterns."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.common.settings import SETTINGS, Classifier, Lora, LoraCache, Synthesis, job_params
from meddap.common.splits import split_ids, split_rows
from meddap.run.jobs import typed_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_every_section_builds_from_the_default_and_paper_configs(default: dict) -> None:
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for config in (default, paper):
        params = job_params(config)
        assert set(params) == set(SETTINGS)
        for name, cls in SETTINGS.items():
            assert cls.from_params(params[name]) == cls.from_config(config)


def test_grid_axes_and_resources_never_reach_a_job(default: dict) -> None:
    params = job_params(default)
    assert "ranks" not in params["lora"] and "resources" not in params["lora"]
    assert set(params["encoding"]) == {"resolution", "flip", "train_adjective"}
    assert set(params["lora"]).isdisjoint(params["encoding"])
    similarity = {"image_size", "candidate_size", "candidates", "threshold", "mask_iou"}
    assert set(params["similarity"]) == similarity
    assert set(params["curation"]) == {"policy"}
    assert set(params["mask_check"]) == {"mask_label"}
    assert {"adjectives", "ratios", "rank"}.isdisjoint(params["synthesis"])
    assert {"models", "external"}.isdisjoint(params["classifier"])
    assert params["classifier"]["augment"] == default["classifier"]["augment"]


def test_nested_sections_are_typed(default: dict) -> None:
    synthesis = Synthesis.from_config(default)
    assert synthesis.sampling.steps == default["synthesis"]["sampling"]["steps"]
    classifier = Classifier.from_config(default)
    assert classifier.augment.hflip is default["classifier"]["augment"]["hflip"]


def test_missing_and_unknown_keys_name_the_key(default: dict) -> None:
    broken = copy.deepcopy(default)
    del broken["lora"]["epochs"]
    with pytest.raises(MeddapError, match=r"config key lora\.epochs is missing"):
        Lora.from_config(broken)
    broken = copy.deepcopy(default)
    del broken["classifier"]["augment"]["rotation"]
    with pytest.raises(MeddapError, match=r"config key classifier\.augment\.rotation is missing"):
        Classifier.from_config(broken)
    sampling = Synthesis.from_config(default).params()["sampling"]
    with pytest.raises(MeddapError, match=r"config key synthesis\.sampling\.stepz is unknown"):
        Synthesis.from_params({"pool": 100, "sampling": {**sampling, "stepz": 3}})
    assert LoraCache.from_config(default).resolution == default["lora"]["resolution"]


def test_job_bridge_types_annotated_sections_only(default: dict) -> None:
    def job(*, lora: Lora, seed: int, other: dict) -> None:
        """A job that takes one section."""

    params = {"lora": job_params(default)["lora"], "seed": 3, "other": {"a": 1}}
    typed = typed_params(job, params)
    assert isinstance(typed["lora"], Lora) and typed["lora"].epochs == default["lora"]["epochs"]
    assert typed["seed"] == 3 and typed["other"] == {"a": 1}


@pytest.fixture()
def tables(tmp_path: Path) -> tuple[str, str]:
    manifest = pd.DataFrame(
        {
            "id": ["c", "a", "b", "d"],
            "label": ["benign", "normal", "malignant", "benign"],
            "image_path": ["c.png", "a.png", "b.png", "d.png"],
        }
    )
    splits = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "a", "b", "c", "d"],
            "fold": [0, 0, 0, 0, 1, 1, 1, 1],
            "split": ["train", "test", "train", "val", "test", "train", "val", "train"],
        }
    )
    manifest.to_parquet(tmp_path / "manifest.parquet")
    splits.to_parquet(tmp_path / "splits.parquet")
    return str(tmp_path / "manifest.parquet"), str(tmp_path / "splits.parquet")


def test_split_rows_are_the_folds_split_sorted_by_id(tables: tuple[str, str]) -> None:
    manifest, splits = tables
    rows = split_rows(manifest, splits, 0, "train")
    assert list(rows.columns) == ["id", "label", "image_path"]
    assert rows.id.tolist() == ["a", "c"] and rows.label.tolist() == ["normal", "benign"]
    assert split_ids(splits, 1, "train") == ["b", "d"]
    assert split_rows(manifest, splits, 1, "val", columns=("label",)).label.tolist() == ["benign"]


def test_split_rows_stop_with_one_sentence(tables: tuple[str, str], tmp_path: Path) -> None:
    manifest, splits = tables
    with pytest.raises(MeddapError, match="has no val images for fold 2"):
        split_rows(manifest, splits, 2, "val")
    pd.read_parquet(manifest).iloc[1:].to_parquet(tmp_path / "short.parquet")
    with pytest.raises(MeddapError, match="lists train id 'c' of fold 0 that .*short.parquet"):
        split_rows(str(tmp_path / "short.parquet"), splits, 0, "train")
    pd.read_parquet(manifest).assign(label="cyst").to_parquet(tmp_path / "odd.parquet")
    with pytest.raises(MeddapError, match=r"odd.parquet has labels \['cyst'\]"):
        split_rows(str(tmp_path / "odd.parquet"), splits, 0, "train")
    pd.read_parquet(splits).drop(columns="split").to_parquet(tmp_path / "nosplit.parquet")
    with pytest.raises(MeddapError, match=r"nosplit.parquet lacks the columns \['split'\]"):
        split_ids(str(tmp_path / "nosplit.parquet"), 0, "train")


def test_fill_leaves_the_other_wildcards_for_snakemake() -> None:
    real = paths.fill(paths.CLS_WEIGHTS, model="resnet34", trainset="real")
    assert real == "results/cls/{dataset}/fold{fold}/resnet34/real/model.safetensors"
    assert paths.CLS_METRICS.format(dataset="d", fold=1, model="m", trainset="real") == (
        "results/cls/d/fold1/m/real/metrics.json"
    )
