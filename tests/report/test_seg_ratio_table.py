"""ClinicalPrior's Table 3 (Dice per real:synthetic ratio) from fake segmenter metrics files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.report.seg_tables import _synthetic_or_none, seg_ratio_table

# trainset: (val Dice, test Dice) per fold
RUNS = {
    "real": ([0.6, 0.6, 0.6], [0.5, 0.6, 0.7]),
    "mask-real-1to1": ([0.7, 0.7, 0.7], [0.9, 0.9, 0.9]),  # best on test
    "mask-real-1to2": ([0.8, 0.8, 0.8], [0.6, 0.6, 0.6]),  # best on val
    "mask-real-0to1": ([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]),
    "edge-real-1to8": ([0.75, 0.75, 0.75], [0.7, 0.7, 0.7]),
    "edge-real-1to4": ([0.75, 0.75, 0.75], [0.7, 0.7, 0.7]),  # tie: fewer synthetic
    "edge-real-0to1": ([0.75, 0.75, 0.75], [0.7, 0.7, 0.7]),
    "aug-mirror": ([0.99, 0.99, 0.99], [0.99, 0.99, 0.99]),  # not a ratio set: ignored
}


def _section(dice: float) -> dict:
    """A metrics.json section with Dice and one other metric."""
    return {"dice": {"mean": dice, "benign": dice}, "hd95": {"mean": None}}


def _metrics(root: Path, runs: dict = RUNS) -> list[str]:
    """One fake metrics.json per trainset and fold; externals `zeta` and `alpha`."""
    paths = []
    for trainset, (val, test) in runs.items():
        for fold, (v, t) in enumerate(zip(val, test, strict=True)):
            path = root / f"{trainset}_{fold}.json"
            record = {"model": "unet", "trainset": trainset, "fold": fold}
            record |= {"val": _section(v), "test": _section(t), "updates": 600, "best_update": 300}
            record["external"] = {"zeta": _section(t / 2), "alpha": _section(t / 4)}
            write_json(record, path)
            paths.append(str(path))
    return paths


def _table(tmp_path: Path, metrics: list[str], **job: object) -> tuple[pd.DataFrame, str, Path]:
    """Run the job (`job`: more of its arguments); its Parquet frame, Markdown text, CSV path."""
    out = {k: tmp_path / f"ratio.{k}" for k in ("parquet", "csv", "md")}
    seg_ratio_table(
        **job,
        metrics=metrics,
        parquet=str(out["parquet"]),
        csv=str(out["csv"]),
        markdown=str(out["md"]),
        dataset="phantom",
        image_size=64,
    )
    return pd.read_parquet(out["parquet"]), out["md"].read_text(), out["csv"]


def test_rows_columns_and_values(tmp_path: Path) -> None:
    table, markdown, csv = _table(tmp_path, _metrics(tmp_path)[::-1])
    assert list(zip(table.setting, table.ratio, strict=True)) == [
        ("-", "1:0"),
        ("edge-real", "1:4"),
        ("edge-real", "1:8"),
        ("edge-real", "0:1"),
        ("mask-real", "1:1"),
        ("mask-real", "1:2"),
        ("mask-real", "0:1"),
    ]
    assert "aug-mirror" not in set(table.trainset)
    real = table.iloc[0]
    assert real.trainset == "real" and real.n_folds == 3 and not real.chosen_on_val
    assert real.test == "60.00 ± 10.00" and real.test_mean == pytest.approx(0.6)
    assert real["external:zeta_mean"] == pytest.approx(0.3)
    assert real.val_dice == "60.00 ± 0.00" and len(real.sources.split(";")) == 3
    dice = [c for c in table if c in ("test", "val_dice") or c.startswith("external:")]
    assert [c for c in dice if not c.endswith(("_mean", "_std"))] == [
        "val_dice",
        "test",
        "external:alpha",
        "external:zeta",
    ]
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)
    assert "at 64 px" in markdown and "| unet | mask-real | 1:2 (val pick) | 3 |" in markdown


def test_val_pick_follows_val_dice_and_ties_take_fewer_synthetic(tmp_path: Path) -> None:
    table, _, _ = _table(tmp_path, _metrics(tmp_path))
    chosen = table[table.chosen_on_val]
    assert list(chosen.trainset) == ["edge-real-1to4", "mask-real-1to2"]
    mask = table[table.setting == "mask-real"]
    assert mask.loc[mask.test_mean.idxmax()].ratio == "1:1"  # test would pick another ratio


def test_no_synthetic_trainset_stops(tmp_path: Path) -> None:
    runs = {k: RUNS[k] for k in ("real", "aug-mirror")}
    with pytest.raises(MeddapError, match="synthetic training set"):
        _table(tmp_path, _metrics(tmp_path, runs))


@pytest.mark.parametrize(
    "name", ["mask-real-0to2", "edge-clinical-1to1", "mask-other-1to1", "real"]
)
def test_other_names_are_not_ratio_sets(name: str) -> None:
    assert _synthetic_or_none(name) is None
