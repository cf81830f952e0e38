"""The AUC columns of ClinicalPrior's Table 3: classifiers on the mask-conditioned 1:k sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from tests.report.test_seg_ratio_table import _metrics
from tests.report.test_seg_ratio_table import _table as ratio_table

SEG_RUNS = {
    "real": ([0.6] * 2, [0.6] * 2),
    "mask-real-1to1": ([0.7] * 2, [0.7] * 2),
    "mask-real-1to2": ([0.8] * 2, [0.8] * 2),
    "mask-real-1to1-mix0.5p4": ([0.75] * 2, [0.75] * 2),
}
# trainset: (val AUC, test AUC) per fold
CLS_RUNS = {
    "real": ([0.70, 0.70], [0.60, 0.80]),
    "mask-real-1to1": ([0.90, 0.90], [0.75, 0.75]),  # best on val
    "mask-real-1to2": ([0.80, 0.80], [0.95, 0.95]),  # best on test
}


def _classifiers(root: Path, runs: dict = CLS_RUNS) -> list[str]:
    """One fake classifier metrics.json per trainset and fold; external `zeta` at AUC/2."""
    paths = []
    for trainset, (val, test) in runs.items():
        for fold, (v, t) in enumerate(zip(val, test, strict=True)):
            record = {"model": "squeezenet1_1", "trainset": trainset, "fold": fold}
            record |= {"val": {"macro": {"auc": v}}, "test": {"macro": {"auc": t}}}
            record["external"] = {"zeta": {"macro": {"auc": t / 2}}}
            path = root / "cls" / f"{trainset}_{fold}.json"
            write_json(record, path)
            paths.append(str(path))
    return paths


def _table(tmp_path: Path, classifiers: list[str]) -> tuple[pd.DataFrame, str]:
    table, markdown, _ = ratio_table(
        tmp_path, _metrics(tmp_path, SEG_RUNS), classifiers=classifiers
    )
    return table, markdown


def test_auc_columns_join_the_rows_of_the_same_set(tmp_path: Path) -> None:
    table, markdown = _table(tmp_path, _classifiers(tmp_path))
    rows = table.set_index("trainset")
    assert rows.loc["real", "auc_squeezenet1_1_test"] == "0.700 ± 0.141"
    assert rows.loc["mask-real-1to2", "auc_squeezenet1_1_test_mean"] == pytest.approx(0.95)
    assert rows.loc["mask-real-1to2", "auc_squeezenet1_1_zeta_mean"] == pytest.approx(0.475)
    assert rows.loc["mask-real-1to1-mix0.5p4", "auc_squeezenet1_1_test"] == "n/a"
    sources = rows.loc["mask-real-1to1", "auc_squeezenet1_1_sources"].split(";")
    assert [Path(s).name for s in sources] == ["mask-real-1to1_0.json", "mask-real-1to1_1.json"]
    assert "auc_squeezenet1_1_test" in markdown and "macro AUC" in markdown


def test_the_classifier_picks_its_ratio_on_val_auc(tmp_path: Path) -> None:
    table, markdown = _table(tmp_path, _classifiers(tmp_path))
    assert table["auc_squeezenet1_1_val_pick"].dtype == bool
    picked = table[table["auc_squeezenet1_1_val_pick"]]
    assert list(picked.trainset) == ["mask-real-1to1"]  # not 1:2, the test-set best
    assert list(table[table.chosen_on_val].trainset) == [
        "mask-real-1to2",
        "mask-real-1to1-mix0.5p4",
    ]
    assert "| 0.750 ± 0.000 * |" in markdown and "0.950 ± 0.000 *" not in markdown


def test_without_classifiers_the_table_is_dice_only(tmp_path: Path) -> None:
    table, markdown = _table(tmp_path, [])
    assert not [c for c in table.columns if c.startswith("auc_")] and "AUC" not in markdown


def test_a_metrics_json_without_auc_stops_naming_it(tmp_path: Path) -> None:
    paths = _classifiers(tmp_path)
    record = {"model": "squeezenet1_1", "trainset": "real", "fold": 0, "val": {}, "test": {}}
    write_json(record | {"external": {}}, paths[0])
    with pytest.raises(MeddapError, match=r"real_0\.json lacks the key 'macro'"):
        _table(tmp_path, paths)
