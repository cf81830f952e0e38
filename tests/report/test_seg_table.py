"""The segmentation table from metrics.json files; config validation of the segmentation track."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy.stats import ttest_rel

from meddap.common.errors import MeddapError
from meddap.report.seg_tables import seg_cell, seg_table
from meddap.run.config import validate_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DICE = {"real": [0.5, 0.6, 0.7], "aug-mirror": [0.55, 0.62, 0.8]}


def _section(dice: float) -> dict:
    metric = {"mean": dice, "benign": dice}
    hd95 = {"mean": None, "benign": None}  # every image undefined: JSON null
    return {"dice": metric, "iou": metric, "hd95": hd95, "assd": {"mean": 2.0, "benign": 2.0}}


def _metrics(root: Path) -> list[str]:
    paths = []
    for trainset, values in DICE.items():
        for fold, dice in enumerate(values):
            path = root / f"{trainset}_{fold}.json"
            record = {"model": "unet", "trainset": trainset, "fold": fold, "test": _section(dice)}
            record |= {"updates": 600, "best_update": 200 + 100 * fold}
            record["external"] = {"ext": _section(dice / 2)}
            path.write_text(json.dumps(record))
            paths.append(str(path))
    return paths


def test_rows_summaries_and_paired_tests(tmp_path: Path) -> None:
    out = {k: str(tmp_path / f"seg_table.{k}") for k in ("parquet", "csv", "md")}
    seg_table(
        metrics=_metrics(tmp_path)[::-1],
        parquet=out["parquet"],
        csv=out["csv"],
        markdown=out["md"],
        dataset="phantom",
        image_size=64,
    )
    table = pd.read_parquet(out["parquet"])
    assert list(zip(table.trainset, table.evaluated_on, strict=True)) == [
        ("real", "test"),
        ("real", "external:ext"),
        ("aug-mirror", "test"),
        ("aug-mirror", "external:ext"),
    ]
    real, mirror = table.iloc[0], table.iloc[2]
    assert real.dice == "60.00 ± 10.00" and real.n_folds == 3 and pd.isna(real.p_dice)
    expected = ttest_rel(DICE["real"], DICE["aug-mirror"]).pvalue
    assert mirror.p_dice == pytest.approx(expected)
    assert mirror.assd == "2.000 ± 0.000" and pd.isna(mirror.hd95_mean)
    assert len(mirror.sources.split(";")) == 3
    markdown = Path(out["md"]).read_text()
    assert "pixels at 64 px" in markdown and "| unet | aug-mirror | test | 3 |" in markdown
    pd.testing.assert_frame_equal(pd.read_csv(out["csv"]), table, check_dtype=False)


def test_a_metrics_file_of_another_kind_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "cls.json"
    bad.write_text(json.dumps({"model": "unet", "trainset": "real", "fold": 0, "test": {}}))
    with pytest.raises(MeddapError, match="cls.json lacks the key"):
        seg_table(
            metrics=[str(bad)], parquet="p", csv="c", markdown="m", dataset="d", image_size=64
        )


def _config(**segmentation: object) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["segmentation"] |= segmentation
    return config


def test_datasets_without_masks_stop_at_validation_naming_dataset_and_key() -> None:
    config = _config(external=["busi_kaggle_b"])
    with pytest.raises(MeddapError, match=r"'segmentation.external': dataset 'busi_kaggle_b'"):
        validate_config(config, SCHEMA)
    config = _config() | {"dataset": "busi_kaggle_b"}
    config["classifier"]["external"] = []
    with pytest.raises(MeddapError, match=r"'dataset': dataset 'busi_kaggle_b' .*no lesion masks"):
        validate_config(config, SCHEMA)
    config["segmentation"]["models"] = []  # the segmentation track off: classifiers only
    validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trainsets", ["aug-blur"], "segmentation.trainsets.0"),
        ("models", ["resnet34"], "segmentation.models.0"),
        ("image_size", 40, "segmentation.image_size"),
        ("channels", [8, 16], "segmentation.channels"),
        ("external", ["nowhere"], "'nowhere' is not in 'datasets'"),
    ],
)
def test_bad_segmentation_keys_are_named(key: str, value: object, message: str) -> None:
    with pytest.raises(MeddapError, match=message):
        validate_config(_config(**{key: value}), SCHEMA)


def test_a_cell_is_its_table_row_with_per_fold_values_and_hashed_sources(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path)
    out = {k: str(tmp_path / f"seg_table.{k}") for k in ("parquet", "csv", "markdown")}
    seg_table(
        metrics=metrics,
        **out,
        dataset="phantom",
        image_size=64,
    )
    row = pd.read_parquet(out["parquet"]).set_index(["trainset", "evaluated_on"])
    target = tmp_path / "cell.json"
    keys = {"model": "unet", "trainset": "aug-mirror", "dataset": "phantom", "image_size": 64}
    seg_cell(metrics=metrics, cell=str(target), evaluated_on="ext", **keys)
    cell = json.loads(target.read_text())
    expected = row.loc[("aug-mirror", "external:ext")]
    assert (
        cell["evaluated_on"] == "external:ext" and cell["scores"]["dice"]["text"] == expected.dice
    )
    assert cell["scores"]["dice"]["p"] == pytest.approx(expected.p_dice)
    assert [f["dice"] for f in cell["per_fold"]] == [d / 2 for d in DICE["aug-mirror"]]
    assert {s["path"] for s in cell["sources"]} == set(metrics)
    assert all(len(s["sha256"]) == 64 for s in cell["sources"])
    with pytest.raises(MeddapError, match="no metrics.json among the inputs scores unet"):
        seg_cell(metrics=metrics, cell=str(target), evaluated_on="other", **keys)
