"""Pool plans, training-set names and the synthetic rows a segmenter takes (no generation)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from meddap.common.errors import MeddapError
from meddap.diffusion.prompts import prompt
from meddap.masked.controlnet import CONDITIONS
from meddap.masked.finetune import prompts_of
from meddap.masked.synthesis import plan
from meddap.seg import names
from meddap.seg.data import synthetic_rows

ROWS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "label": ["benign", "benign", "benign", "malignant"],
        "image_path": ["a.png", "b.png", "c.png", "d.png"],
        "mask_path": ["a_m.png", "b_m.png", "c_m.png", "d_m.png"],
    }
)
PROMPTS = [f"prompt {i}" for i in ROWS["id"]]


def test_conditions_are_the_controlnets() -> None:
    assert names.CONDITIONS == CONDITIONS


def test_real_pools_cycle_their_parents_so_every_prefix_holds_each_mask_k_times() -> None:
    table = plan(ROWS, PROMPTS, "mask-real", 3, fold=0, seed=0)
    assert list(table["parent_id"]) == ["a", "b", "c", "d"] * 3
    assert list(table["variant"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert list(table["prompt"][:4]) == PROMPTS and table["seed"].is_unique


def test_clinical_pools_keep_the_class_mix_and_are_deterministic() -> None:
    table = plan(ROWS, PROMPTS, "mask-clinical", 2, fold=1, seed=0)
    assert (table["label"][:4] == "benign").sum() == 3 and (
        table["label"] == "malignant"
    ).sum() == 2
    donors = ROWS.set_index("id").loc[table["attributes_from"], "label"]
    assert list(donors) == list(table["label"])  # the prompt is a lesion's of the same class
    assert table["size"].isin(["small", "medium", "large"]).all()
    assert table.equals(plan(ROWS, PROMPTS, "mask-clinical", 2, fold=1, seed=0))
    other = plan(ROWS, PROMPTS, "mask-clinical", 2, fold=2, seed=0)
    assert not table["seed"].equals(other["seed"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [("edge-clinical", "needs a real image"), ("text-real", "is not {condition}-{source}")],
)
def test_settings_without_a_mask_source_stop(setting: str, message: str) -> None:
    with pytest.raises(MeddapError, match=message):
        plan(ROWS, PROMPTS, setting, 1, fold=0, seed=0)


def test_trainset_names_and_ratios() -> None:
    wanted = names.synthetic_of("edge-real-1to8")
    assert wanted is not None and (wanted.setting, wanted.ratio) == ("edge-real", "1:8")
    assert names.synthetic_of("mask-clinical-0to1").real == 0
    assert (
        names.synthetic_of("aug-mirror") is None and names.augmentation_of("mask-real-1to1") is None
    )
    assert names.ratio_token("0:1") == "0to1"
    with pytest.raises(MeddapError, match="'2:1' is not real:synthetic"):
        names.ratio_token("2:1")


def _pool(tmp_path: Path, n: int, setting: str = "mask-real") -> str:
    table = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "label": "benign",
            "image_path": "x.png",
            "mask_path": "y.png",
            "index": range(n),
            "fold": 0,
            "setting": setting,
        }
    )
    path = tmp_path / "pool.parquet"
    table.to_parquet(path)
    return str(path)


def test_synthetic_rows_take_the_prefix_and_check_fold_setting_and_size(tmp_path: Path) -> None:
    path = _pool(tmp_path, 8)
    assert list(synthetic_rows(path, 0, "mask-real-1to2", 3)["id"]) == [f"s{i}" for i in range(6)]
    assert len(synthetic_rows(path, 0, "mask-real-0to1", 3)) == 3
    with pytest.raises(MeddapError, match="raise segmentation.synthesis.pool"):
        synthetic_rows(path, 0, "mask-real-1to4", 3)
    with pytest.raises(MeddapError, match="needs 1"):
        synthetic_rows(path, 1, "mask-real-1to1", 3)
    with pytest.raises(MeddapError, match="needs 'mask-clinical'"):
        synthetic_rows(path, 0, "mask-clinical-1to1", 3)


def test_attribute_prompts_must_cover_exactly_the_train_lesions(tmp_path: Path) -> None:
    table = ROWS[["id"]].assign(prompt=PROMPTS)
    path = tmp_path / "attributes.parquet"
    table.to_parquet(path)
    assert prompts_of(ROWS, str(path), "attributes") == PROMPTS
    assert prompts_of(ROWS, str(path), "class")[3] == prompt("malignant")
    with pytest.raises(MeddapError, match="'d', which is not a train lesion"):
        prompts_of(ROWS.head(3), str(path), "attributes")
    table.head(2).to_parquet(path)
    with pytest.raises(MeddapError, match="no attributes of train lesion 'c'"):
        prompts_of(ROWS, str(path), "attributes")
