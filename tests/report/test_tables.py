"""Tables 1-3 and single cells from fake metrics.json trees with known accuracies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel

from meddap.cls.metrics import classification_metrics
from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES
from meddap.common.tables import markdown_table
from meddap.report import tables

MODELS = ("densenet121", "squeezenet1_1")
RANKS = {0: 4, 1: 4, 2: 2}  # fold -> the rank chosen for that fold
QUALITY_METRIC = "fd_squeezenet1_1_real_only"
# Per-fold test and val accuracy of densenet121; squeezenet1_1 scores 0.1 less.
# Best by val is dark-100, best by test would be bright-50.
TEST = {
    "real": [0.70, 0.73, 0.71],
    "bright-50": [0.93, 0.88, 0.92],
    "bright-100": [0.80, 0.81, 0.79],
    "dark-50": [0.75, 0.78, 0.77],
    "dark-100": [0.82, 0.86, 0.80],
}
VAL = {
    "real": [0.70, 0.70, 0.71],
    "bright-50": [0.80, 0.81, 0.80],
    "bright-100": [0.70, 0.72, 0.70],
    "dark-50": [0.75, 0.74, 0.73],
    "dark-100": [0.90, 0.91, 0.89],
}


def _trainset(setting: str, fold: int) -> str:
    return "real" if setting == "real" else f"r{RANKS[fold]}-{setting}"


def _scores(accuracy: float, fold: int) -> dict:
    macro = {"sensitivity": accuracy - 0.05 * fold, "specificity": accuracy + 0.01 * fold**2}
    macro |= {"precision": accuracy - 0.02, "f1": accuracy - 0.03 * (fold % 2)}
    # no normal image in the test split (null scores); malignant never predicted
    recall = {"normal": (None, 0), "benign": (accuracy, 9), "malignant": (0.0, 4)}
    per_class = {c: {"sensitivity": r, "support": n} for c, (r, n) in recall.items()}
    return {
        "accuracy": accuracy,
        "balanced_accuracy": accuracy / 2,
        "macro": macro,
        **{"per_class": per_class},
    }


def _metrics(model: str, setting: str, fold: int) -> dict:
    shift = MODELS.index(model) * 0.1
    test = TEST[setting][fold] - shift
    external = test - (0.1 if setting == "real" else 0.02 * fold)
    return {
        "fold": fold,
        "model": model,
        "trainset": _trainset(setting, fold),
        "val": _scores(VAL[setting][fold] - shift, fold),
        "test": _scores(test, fold),
        "external": {"ext": {"accuracy": external, "rule": "benign vs malignant"}},
        "updates": 400 if setting != "dark-100" or fold else 340,  # one run stopped early
        "best_update": 100 * (fold + 1),
    }


def _write(path: Path, record: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return str(path)


class Tree(NamedTuple):
    """A fake grid: metrics.json and quality JSON files, and the keys of each quality file."""

    metrics: list[str]
    quality: list[str]
    quality_sets: list[dict]

    def sets(self, quality: list[str]) -> list[dict]:
        """The keys of a subset of the quality files."""
        return [self.quality_sets[self.quality.index(path)] for path in quality]


def _tree(root: Path, folds: tuple[int, ...] = (0, 1, 2)) -> Tree:
    """Every metrics.json of the grid and every quality JSON, at their paths under `root`."""
    metrics = [
        _write(
            root
            / paths.CLS_METRICS.format(dataset="ds", fold=f, model=m, trainset=_trainset(s, f)),
            _metrics(m, s, f),
        )
        for f in folds
        for m in MODELS
        for s in TEST
    ]
    sets = [
        {"fold": f, "rank": RANKS[f], "adjective": a} for f in folds for a in ("bright", "dark")
    ]
    quality = [
        _write(
            root / paths.QUALITY.format(dataset="ds", **keys),
            {
                "fold": keys["fold"],
                QUALITY_METRIC: (10 if keys["adjective"] == "bright" else 20) + keys["fold"],
                "fid_inception": "unavailable",
                "image_size": 64,
            },
        )
        for keys in sets
    ]
    return Tree(metrics, quality, sets)


@pytest.fixture()
def tree(tmp_path: Path) -> Tree:
    return _tree(tmp_path)


def _outputs(tmp_path: Path, name: str) -> dict[str, str]:
    return {k: str(tmp_path / f"tables/{name}.{e}") for k, e in [("parquet", "parquet"),
            ("csv", "csv"), ("markdown", "md")]}  # fmt: skip


def _row(frame: pd.DataFrame, model: str, trainset: str) -> pd.Series:
    rows = frame[(frame.model == model) & (frame.trainset == trainset)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_collect_runs_reads_keys_and_scores_from_content(tree: Tree) -> None:
    runs = tables.collect_runs(tree.metrics, "ds")
    assert len(runs) == 3 * len(MODELS) * len(TEST)
    run = runs[(runs.model == "squeezenet1_1") & (runs.trainset == "r2-dark-100")].iloc[0]
    assert (run.fold, run["rank"], run.adjective, run.ratio) == (2, 2, "dark", 100)
    assert run.test_accuracy == pytest.approx(0.70)
    assert run["external:ext"] == pytest.approx(0.70 - 0.04)
    assert run.source.endswith("fold2/squeezenet1_1/r2-dark-100/metrics.json")
    real = runs[runs.trainset == "real"]
    assert real["rank"].isna().all() and real.ratio.isna().all()


def test_table1_means_stds_quality_and_sources(tmp_path: Path, tree: Tree) -> None:
    out = _outputs(tmp_path, "table1")
    tables.table1(
        metrics=tree.metrics,
        quality=tree.quality,
        **out,
        dataset="ds",
        quality_sets=tree.quality_sets,
    )
    frame = pd.read_parquet(out["parquet"])
    assert len(frame) == len(MODELS) * len(TEST)
    row = _row(frame, "densenet121", "dark-100")
    assert row.accuracy_mean == pytest.approx(np.mean(TEST["dark-100"]))
    assert row.accuracy_std == pytest.approx(np.std(TEST["dark-100"], ddof=1))
    assert row.accuracy == f"{np.mean(TEST['dark-100']) * 100:.2f} ± {row.accuracy_std * 100:.2f}"
    assert (row.n_folds, row.ranks, row.folds) == (3, "2;4", "0;1;2")
    assert (row.quality_metric, row.quality_mean) == (QUALITY_METRIC, pytest.approx(21.0))
    expected = [p for p in tree[0] if "/densenet121/" in p and p.endswith("dark-100/metrics.json")]
    assert row.sources.split(";") == sorted(expected, key=lambda p: p.split("/fold")[1])
    assert all(Path(p).is_file() for p in row.quality_sources.split(";"))
    real = _row(frame, "squeezenet1_1", "real")
    assert real.accuracy_mean == pytest.approx(np.mean(TEST["real"]) - 0.1)
    assert np.isnan(real.quality_mean) and real.quality_sources == ""
    csv = pd.read_csv(out["csv"])
    assert csv.accuracy_mean.tolist() == pytest.approx(frame.accuracy_mean.tolist())
    # compute: updates made (one run stopped early) and the kept update, means over folds
    assert (row.updates, row.updates_per_fold, row.kept_update) == (380, "340;400;400", 200)
    assert real.updates == 400
    assert real.balanced_accuracy_mean == pytest.approx(real.accuracy_mean / 2)
    assert (real.recall_normal, real.recall_malignant) == ("n/a", "0.00 ± 0.00")
    assert np.isnan(real.recall_normal_mean)
    lines = Path(out["markdown"]).read_text().splitlines()
    assert lines[0].startswith("Table 1:") and QUALITY_METRIC in lines[0]
    scale = "FD (squeezenet1_1 features of the real-only classifier, 64 px)"
    assert scale in lines[0] and row.quality_scale == scale
    assert "same budget of optimizer updates (classifier.training)" in lines[0]
    assert lines[2] == (
        "| model | trainset | ranks | n_folds | updates | kept_update | accuracy "
        "| balanced_accuracy | recall_normal | recall_benign | recall_malignant | quality_mean |"
    )
    assert sum(line.startswith("| densenet121 |") for line in lines) == len(TEST)


def test_table2_chooses_best_by_validation_and_tests_over_folds(tmp_path: Path, tree: Tree) -> None:
    out = _outputs(tmp_path, "table2")
    tables.table2(metrics=tree.metrics, **out, dataset="ds")
    frame = pd.read_parquet(out["parquet"])
    assert frame.groupby("model").trainset.apply(list).to_dict() == {
        m: ["real", "dark-100"] for m in MODELS
    }
    best, real = _row(frame, "densenet121", "dark-100"), _row(frame, "densenet121", "real")
    assert best.accuracy_mean == pytest.approx(np.mean(TEST["dark-100"]))
    assert best.p_accuracy == pytest.approx(ttest_rel(TEST["real"], TEST["dark-100"]).pvalue)
    sens = [np.array(TEST[s]) - 0.05 * np.arange(3) for s in ("real", "dark-100")]
    assert best.p_sensitivity == pytest.approx(ttest_rel(*sens).pvalue)
    assert best.sensitivity_mean == pytest.approx(sens[1].mean())
    assert np.isnan(real.p_accuracy) and best.sources.count("metrics.json") == 3
    caption = Path(out["markdown"]).read_text().splitlines()[0]
    assert "highest mean validation accuracy" in caption and "not on test" in caption


def test_table3_external_accuracy_of_real_and_best(tmp_path: Path, tree: Tree) -> None:
    out = _outputs(tmp_path, "table3")
    tables.table3(metrics=tree.metrics, **out, dataset="ds")
    frame = pd.read_parquet(out["parquet"])
    assert set(frame.external) == {"ext"} and len(frame) == 2 * len(MODELS)
    real, best = _row(frame, "densenet121", "real"), _row(frame, "densenet121", "dark-100")
    real_ext = np.array(TEST["real"]) - 0.1
    best_ext = np.array(TEST["dark-100"]) - 0.02 * np.arange(3)
    assert real.accuracy_mean == pytest.approx(real_ext.mean())
    assert best.accuracy_mean == pytest.approx(best_ext.mean())
    assert best.p_accuracy == pytest.approx(ttest_rel(real_ext, best_ext).pvalue)
    assert Path(out["markdown"]).read_text().startswith("Table 3:")


def test_single_fold_gives_nan_p_values(tmp_path: Path) -> None:
    out = _outputs(tmp_path, "table2")
    tables.table2(metrics=_tree(tmp_path, folds=(0,)).metrics, **out, dataset="ds")
    frame = pd.read_parquet(out["parquet"])
    assert frame.p_accuracy.isna().all() and frame.accuracy_std.isna().all()
    assert "± n/a" in Path(out["markdown"]).read_text()


def test_tables_average_over_the_classes_the_test_split_holds(tmp_path: Path) -> None:
    """Scores from real metrics: a split without normal images leaves normal out everywhere."""
    labels = ["benign", "benign", "malignant", "malignant"]
    probs = np.eye(3)[[0, 1, 2, 1]]  # B->N B->B M->M M->B
    test = classification_metrics(labels, probs, CLASSES)
    tree = _tree(tmp_path, folds=(0,))
    for path in tree.metrics:
        _write(Path(path), json.loads(Path(path).read_text()) | {"test": test})
    out = {n: _outputs(tmp_path, n) for n in ("table1", "table2")}
    tables.table1(metrics=tree.metrics, quality=tree.quality, **out["table1"], dataset="ds",
                  quality_sets=tree.quality_sets)  # fmt: skip
    tables.table2(metrics=tree.metrics, **out["table2"], dataset="ds")
    real = _row(pd.read_parquet(out["table1"]["parquet"]), "densenet121", "real")
    assert (real.recall_normal, real.recall_benign) == ("n/a", "50.00 ± n/a")
    assert real.balanced_accuracy_mean == pytest.approx(1 / 2)
    real = _row(pd.read_parquet(out["table2"]["parquet"]), "densenet121", "real")
    assert real.sensitivity_mean == pytest.approx(1 / 2) == real.balanced_accuracy_mean
    assert real.precision_mean == pytest.approx((1 / 2 + 1) / 2)
    assert real.specificity_mean == pytest.approx((1 / 2 + 1) / 2)


def test_cell_from_its_own_files_only(tmp_path: Path, tree: Tree) -> None:
    mine = [p for p in tree.metrics if "/densenet121/" in p and "-bright-50/" in p]
    quality = [p for p in tree.quality if p.endswith("bright.json")]
    target = tmp_path / "results/cells/table1/densenet121/bright/50.json"
    tables.cell(
        metrics=mine,
        quality=quality,
        cell=str(target),
        table="table1",
        model="densenet121",
        adjective="bright",
        ratio=50,
        dataset="ds",
        quality_sets=tree.sets(quality),
    )
    record = json.loads(target.read_text())
    assert record["accuracy_mean"] == pytest.approx(np.mean(TEST["bright-50"]))
    assert record["accuracy_std"] == pytest.approx(np.std(TEST["bright-50"], ddof=1))
    assert [f["test_accuracy"] for f in record["per_fold"]] == pytest.approx(TEST["bright-50"])
    assert [f["rank"] for f in record["per_fold"]] == [4, 4, 2]
    assert record["quality_mean"] == pytest.approx(11.0)
    hashes = {s["path"]: s["sha256"] for s in record["sources"]}
    assert set(hashes) == set(mine) | set(quality)
    assert all(hashlib.sha256(Path(p).read_bytes()).hexdigest() == h for p, h in hashes.items())


def test_cell_without_matching_runs_fails(tmp_path: Path, tree: Tree) -> None:
    with pytest.raises(MeddapError, match="densenet121 bright 200%"):
        tables.cell(
            metrics=tree.metrics,
            quality=tree.quality,
            cell=str(tmp_path / "c.json"),
            table="table1",
            model="densenet121",
            adjective="bright",
            ratio=200,
            dataset="ds",
            quality_sets=tree.quality_sets,
        )
    assert not (tmp_path / "c.json").exists()


def test_missing_quality_names_the_metrics_file(tmp_path: Path, tree: Tree) -> None:
    quality = [p for p in tree.quality if "fold1/r4/dark" not in p]
    with pytest.raises(MeddapError, match=r"fold1/densenet121/r4-dark-100/metrics.json"):
        tables.table1(
            metrics=tree.metrics,
            quality=quality,
            **_outputs(tmp_path, "t1"),
            dataset="ds",
            quality_sets=tree.sets(quality),
        )
    assert not (tmp_path / "tables").exists()


def test_incomplete_inputs_are_refused_naming_the_file(tmp_path: Path, tree: Tree) -> None:
    empty = _write(tmp_path / "elsewhere/metrics.json", {})
    with pytest.raises(MeddapError, match="elsewhere/metrics.json lacks the key 'fold'"):
        tables.collect_runs([empty], "ds")
    record = {k: v for k, v in _metrics("densenet121", "real", 0).items() if k != "test"}
    _write(Path(empty), record)
    with pytest.raises(MeddapError, match="lacks the key 'test'"):
        tables.collect_runs([empty], "ds")
    out = _outputs(tmp_path, "t1")
    with pytest.raises(MeddapError, match="6 quality JSON inputs but 5 quality_sets"):
        tables.table1(**out, metrics=tree.metrics, quality=tree.quality,
                      dataset="ds", quality_sets=tree.quality_sets[1:])  # fmt: skip
    swapped = [tree.quality_sets[k] for k in (2, 1, 0, 3, 4, 5)]
    with pytest.raises(MeddapError, match="scores fold 0, not 1"):
        tables.table1(**out, metrics=tree.metrics, quality=tree.quality,
                      dataset="ds", quality_sets=swapped)  # fmt: skip
    assert not (tmp_path / "tables").exists()


def test_markdown_table_escapes_and_formats() -> None:
    frame = pd.DataFrame({"a": ["x|y", None], "b": [0.123456, float("nan")]})
    assert markdown_table(frame).splitlines() == [
        "| a | b |",
        "| --- | --- |",
        "| x\\|y | 0.1235 |",
        "|  | n/a |",
    ]


def test_table1_uses_inception_fid_only_when_every_set_has_it(tmp_path: Path, tree: Tree) -> None:
    for k, path in enumerate(tree.quality):  # bright sets of folds 0-2 get 100, 102, 104
        record = json.loads(Path(path).read_text())
        Path(path).write_text(json.dumps(record | {"fid_inception": 100.0 + k}))
    out = _outputs(tmp_path, "table1")
    job = {"metrics": tree.metrics, "quality": tree.quality, "quality_sets": tree.quality_sets}
    tables.table1(**job, **out, dataset="ds")
    frame = pd.read_parquet(out["parquet"])
    bright = _row(frame, "densenet121", "bright-50")
    assert (bright.quality_metric, bright.quality_mean) == ("fid_inception", pytest.approx(102.0))
    assert "torch-fidelity weights, 299 px" in bright.quality_scale
    unavailable = {"fold": 0, QUALITY_METRIC: 10, "fid_inception": "unavailable", "image_size": 64}
    Path(tree.quality[0]).write_text(json.dumps(unavailable))
    tables.table1(**job, **out, dataset="ds")
    bright = _row(pd.read_parquet(out["parquet"]), "densenet121", "bright-50")
    assert (bright.quality_metric, bright.quality_mean) == (QUALITY_METRIC, pytest.approx(11.0))


def _with_base_model(root: Path, tree: Tree, val: float) -> Tree:
    """`tree` plus rank-0 (base model) runs of every augmented setting, val accuracy `val`,
    test accuracy 0.5, and their quality files (FD 30 + fold)."""
    base = []
    for f in (0, 1, 2):
        for m in MODELS:
            for s in [s for s in TEST if s != "real"]:
                record = _metrics(m, s, f)
                record |= {"trainset": f"r0-{s}", "val": _scores(val, f), "test": _scores(0.5, f)}
                path = paths.CLS_METRICS.format(dataset="ds", fold=f, model=m, trainset=f"r0-{s}")
                base.append(_write(root / path, record))
    sets = [{"fold": f, "rank": 0, "adjective": a} for f in (0, 1, 2) for a in ("bright", "dark")]
    quality = [
        _write(
            root / paths.QUALITY.format(dataset="ds", **keys),
            {"fold": keys["fold"], QUALITY_METRIC: 30 + keys["fold"], "fid_inception": "n/a"}
            | {"image_size": 64},
        )
        for keys in sets
    ]
    return Tree(tree.metrics + base, tree.quality + quality, tree.quality_sets + sets)


def test_base_model_rows_sit_beside_lora_rows_and_tables_2_3_skip_them(
    tmp_path: Path, tree: Tree
) -> None:
    grid = _with_base_model(tmp_path, tree, val=0.99)  # the best val accuracy of all
    out = _outputs(tmp_path, "table1")
    tables.table1(metrics=grid.metrics, quality=grid.quality, **out, dataset="ds",
                  quality_sets=grid.quality_sets)  # fmt: skip
    frame = pd.read_parquet(out["parquet"])
    assert len(frame) == len(MODELS) * (2 * len(TEST) - 1)
    dense = list(frame[frame.model == "densenet121"].trainset)
    assert dense[0] == "real" and all(t.startswith("r0-") for t in dense[1:5])
    assert not any(t.startswith("r0-") for t in dense[5:])
    base = _row(frame, "densenet121", "r0-dark-100")
    assert (base.ranks, base.accuracy_mean, base.quality_mean) == ("0", 0.5, pytest.approx(31.0))
    lora = _row(frame, "densenet121", "dark-100")
    assert (lora.ranks, lora.quality_mean) == ("2;4", pytest.approx(21.0))
    assert "r0-" in Path(out["markdown"]).read_text().splitlines()[0]
    for name in ("table2", "table3"):
        out = _outputs(tmp_path, name)
        getattr(tables, name)(metrics=grid.metrics, **out, dataset="ds")
        assert set(pd.read_parquet(out["parquet"]).trainset) == {"real", "dark-100"}


def test_the_tables_inception_size_is_the_one_quality_reads_at() -> None:
    from meddap.synth.quality import INCEPTION_SIZE
    from meddap.synth.rank import INCEPTION_PX

    assert INCEPTION_PX == INCEPTION_SIZE
