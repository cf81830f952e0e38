"""Tables 1-3 of the paper and single Table-1 cells, computed from classifier metrics.json files.

Every row names the metrics.json (and quality JSON) files it was computed from, so each number
can be traced back. Accuracies are fractions in the numeric columns and percentages in the
"mean ± std" text columns; std is the sample standard deviation over folds (ddof=1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

from meddap.common.atomic import read_json, write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.labels import CLASSES
from meddap.common.tables import write_table
from meddap.synth.rank import INCEPTION, metric_scale, selection_metric
from meddap.trainsets import TextSet, parse

MACRO = ("sensitivity", "specificity", "precision", "f1")
TABLE2_METRICS = ("accuracy", "balanced_accuracy", *MACRO)
RECALLS = tuple(f"recall_{c}" for c in CLASSES)
COMPUTE = ["updates", "kept_update"]
COMPUTE_CAPTION = (
    " Every row of a model trained on the same budget of optimizer updates ({key}.training); "
    "updates = updates made (mean over folds; below the budget where a run stopped early on "
    "validation), kept_update = the validated update kept (mean over folds)."
)
CAPTION1 = (
    "Table 1: test accuracy, balanced accuracy and recall per class in % (mean ± sample std "
    "over folds; recall 0 = a class the classifier never predicts, n/a = none in the test "
    "split) per classifier, adjective and "
    "synthetic ratio, with the synthetic set's quality ({metric}, mean over folds; lower is "
    "better); 'real' rows train on real images only, 'r0-' rows on sets of the base model without "
    "LoRA (when lora.ranks holds 0). Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="classifier")
CAPTION2 = (
    "Table 2: test scores (mean ± sample std over folds; macro averages over the classes the "
    "test split holds) of real-only vs the best augmented setting per model (among the LoRA "
    "sets, not the base model's r0 sets), "
    "where best = highest mean validation accuracy over folds, chosen per model, not on test "
    "data (the paper does not say how it chose); p = paired "
    "t-test (scipy ttest_rel) over folds against real-only, NaN with fewer than 2 paired folds. "
    "Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="classifier")
CAPTION3 = (
    "Table 3: external test accuracy in % (mean ± sample std over folds; benign vs malignant, "
    "normal images left out) of real-only vs the Table-2 best setting per model (best by "
    "validation accuracy on the training dataset); p = paired t-test over folds, NaN with fewer "
    "than 2 paired folds. Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="classifier")


def collect_runs(metrics: list[str], dataset: str) -> pd.DataFrame:
    """One row per metrics.json of `dataset`: its keys and scores, from its content."""
    if not metrics:
        raise MeddapError("the table needs at least one classifier metrics.json, got none")
    runs = pd.DataFrame([_run_row(path, dataset) for path in metrics])
    key = ["dataset", "model", "trainset", "fold"]
    duplicated = runs[runs.duplicated(key, keep=False)]
    if not duplicated.empty:
        raise MeddapError(f"{duplicated.source.iloc[0]} repeats a (dataset, fold, model, trainset)")
    runs["rank"] = runs["rank"].astype("Int64")
    runs["ratio"] = runs["ratio"].astype("Int64")
    return runs.sort_values(key, kind="stable").reset_index(drop=True)


def table1(
    *,
    metrics: list[str],
    quality: list[str],
    parquet: str,
    csv: str,
    markdown: str,
    dataset: str,
    quality_sets: list[dict],
) -> None:
    """Job: Table 1, test accuracy per model x adjective x ratio (+ real-only) with quality.

    `quality_sets[i]` holds the fold, rank and adjective of the set `quality[i]` scores.
    """
    frame = _table1_frame(collect_runs(metrics, dataset), _quality_records(quality, quality_sets))
    scored = frame[frame.quality_metric != ""]
    metric = (
        "quality"
        if scored.empty
        else ": ".join(scored.iloc[0][["quality_metric", "quality_scale"]])
    )
    shown = ["model", "trainset", "ranks", "n_folds", *COMPUTE, "accuracy", "balanced_accuracy"]
    shown += [*RECALLS, "quality_mean"]
    _write_table(frame, shown, CAPTION1.format(metric=metric), parquet, csv, markdown)


def table2(*, metrics: list[str], parquet: str, csv: str, markdown: str, dataset: str) -> None:
    """Job: Table 2, real-only vs best-by-validation setting per model, with paired t-tests."""
    runs = collect_runs(metrics, dataset)
    frame = pd.concat([_table2_rows(runs, m) for m in sorted(runs.model.unique())])
    shown = ["model", "trainset", "ranks", "n_folds", *COMPUTE, "val_accuracy_mean"]
    shown += [c for m in TABLE2_METRICS for c in (m, f"p_{m}")]
    _write_table(frame, shown, CAPTION2, parquet, csv, markdown)


def table3(*, metrics: list[str], parquet: str, csv: str, markdown: str, dataset: str) -> None:
    """Job: Table 3, external accuracy of real-only vs the Table-2 best setting per model."""
    runs = collect_runs(metrics, dataset)
    externals = sorted(c.removeprefix("external:") for c in runs if c.startswith("external:"))
    if not externals:
        raise MeddapError(
            f"none of the {len(metrics)} metrics.json inputs (e.g. {metrics[0]}) holds an "
            "external evaluation"
        )
    rows = [_table3_rows(runs, m, e) for m in sorted(runs.model.unique()) for e in externals]
    shown = ["model", "external", "trainset", "ranks", "n_folds", *COMPUTE, "accuracy"]
    shown += ["p_accuracy"]
    _write_table(pd.concat(rows), shown, CAPTION3, parquet, csv, markdown)


def cell(
    *,
    metrics: list[str],
    quality: list[str],
    cell: str,
    table: str,
    model: str,
    adjective: str,
    ratio: int,
    dataset: str,
    quality_sets: list[dict],
) -> None:
    """Job: one Table-1 cell as JSON (mean, std, per-fold values, sources with sha256)."""
    if table != "table1":
        raise MeddapError(f"cell table {table!r} is not supported; only table1 cells exist")
    runs = collect_runs(metrics, dataset)
    records = _quality_records(quality, quality_sets)
    setting = runs.ratio.eq(ratio).fillna(False) & (runs.adjective == adjective)
    mask = setting & (runs.model == model)
    if not mask.any():
        raise MeddapError(f"no metrics.json among the inputs is {model} {adjective} {ratio}%")
    row = _table1_frame(runs[mask], records).iloc[0]
    sources = row.sources.split(";") + [p for p in row.quality_sources.split(";") if p]
    write_json(
        {
            "table": table,
            "dataset": row.dataset,
            "model": model,
            "adjective": adjective,
            "ratio": int(ratio),
            "accuracy_mean": row.accuracy_mean,
            "accuracy_std": row.accuracy_std,
            "accuracy": row.accuracy,
            "quality_metric": row.quality_metric,
            "quality_mean": row.quality_mean,
            "per_fold": _per_fold(runs[mask], records),
            "sources": [{"path": p, "sha256": file_sha256(p)} for p in sources],
        },
        cell,
    )


def _run_row(path: str, dataset: str) -> dict:
    """The keys (fold, model, trainset) and scores of one classifier metrics.json."""
    record = read_json(path)
    try:
        keys = {k: record[k] for k in ("fold", "model", "trainset")}
        test = record["test"]
        row = {
            "updates": record["updates"],
            "best_update": record["best_update"],
            "val_accuracy": record["val"]["accuracy"],
            "test_accuracy": test["accuracy"],
            "test_balanced_accuracy": test["balanced_accuracy"],
            **{f"test_{k}": test["macro"][k] for k in MACRO},
            **{f"test_recall_{c}": _recall(test["per_class"][c]) for c in CLASSES},
            **{f"external:{d}": e["accuracy"] for d, e in record.get("external", {}).items()},
        }
    except (KeyError, TypeError) as err:
        raise MeddapError(f"{path} lacks the key {err} of a classifier metrics.json") from None
    parsed = parse(keys["trainset"])
    text = isinstance(parsed, TextSet)
    keys |= {k: getattr(parsed, k) if text else None for k in ("rank", "adjective", "ratio")}
    return {"dataset": dataset, **keys, **row, "source": path}


def summarise(values: pd.Series, percent: bool = True) -> dict:
    """mean, sample std and the "mean ± std" text of per-fold values."""
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    scale = 100 if percent else 1
    digits = 2 if percent else 3
    spread = "n/a" if np.isnan(std) else f"{std * scale:.{digits}f}"
    return {"mean": mean, "std": std, "text": f"{mean * scale:.{digits}f} ± {spread}"}


def _recall(scores: dict) -> float | None:
    """A class's test recall; None where the test split holds none of it."""
    return scores["sensitivity"] if scores.get("support", 1) else None


def summarise_defined(values: pd.Series, percent: bool = True) -> dict:
    """`summarise` of the defined values; NaN and "n/a" where no fold has one."""
    values = values.dropna()
    if values.empty:
        return {"mean": float("nan"), "std": float("nan"), "text": "n/a"}
    return summarise(values, percent)


def _describe(group: pd.DataFrame) -> dict:
    """Keys shared by every table row: setting, ranks, folds and source files."""
    adjective, ratio = group.adjective.iloc[0], group.ratio.iloc[0]
    real = pd.isna(ratio)
    setting = "real" if real else f"{adjective}-{ratio}"
    return {
        "dataset": group.dataset.iloc[0],
        "model": group.model.iloc[0],
        "trainset": f"r0-{setting}" if _is_base(group) else setting,
        "adjective": None if real else adjective,
        "ratio": pd.NA if real else int(ratio),
        "ranks": ";".join(map(str, sorted(group["rank"].dropna().unique()))),
        "n_folds": len(group),
        "folds": ";".join(map(str, group.fold)),
        **compute_cells(group),
        "sources": ";".join(group.source),
    }


def compute_cells(group: pd.DataFrame) -> dict:
    """A row's training compute from its runs' `updates` and `best_update` columns: the mean
    updates made, each fold's, and the mean kept update."""
    made = group["updates"].astype(int)
    kept = group["best_update"].dropna()
    return {
        "updates": float(made.mean()),
        "updates_per_fold": ";".join(map(str, made)),
        "kept_update": float(kept.mean()) if len(kept) else float("nan"),
    }


def _is_base(group: pd.DataFrame) -> bool:
    """Whether the runs train on sets of the base model without LoRA (rank 0)."""
    return bool(group["rank"].eq(0).fillna(False).all())


def _groups(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """Runs per (model, kind, adjective, ratio) across folds (LoRA ranks may differ by fold);
    kinds in the order real, base model (rank 0), LoRA."""
    kind = np.where(runs.ratio.isna(), 0, np.where(runs["rank"].eq(0).fillna(False), 1, 2))
    by = ["model", "_kind", "adjective", "ratio"]
    ordered = runs.assign(_kind=kind).sort_values([*by, "fold"])
    return [g.drop(columns="_kind") for _, g in ordered.groupby(by, sort=False, dropna=False)]


def _table1_frame(runs: pd.DataFrame, records: dict) -> pd.DataFrame:
    """Table-1 rows of `runs`; one quality metric for all rows (see `_quality_metric`)."""
    augmented = runs[runs.ratio.notna()]
    used = [_quality_for(run, records) for run in augmented.itertuples()]
    metric = _quality_metric(used) if used else ""
    rows = []
    for group in _groups(runs):
        row = _describe(group)
        for name in ("accuracy", "balanced_accuracy", *RECALLS):
            summary = summarise_defined(group[f"test_{name}"])
            row |= {f"{name}_mean": summary["mean"], f"{name}_std": summary["std"]}
            row[name] = summary["text"]
        rows.append({**row, **_quality_cell(group, records, metric)})
    return pd.DataFrame(rows)


def _quality_records(
    quality: list[str], sets: list[dict]
) -> dict[tuple[int, int, str], tuple[str, dict]]:
    """(fold, rank, adjective) -> (path, record) of each quality JSON and the set it scores."""
    if len(quality) != len(sets):
        raise MeddapError(f"{len(quality)} quality JSON inputs but {len(sets)} quality_sets")
    records = {}
    for path, keys in zip(quality, sets, strict=True):
        record = read_json(path)
        if record.get("fold") != keys["fold"]:
            raise MeddapError(f"{path} scores fold {record.get('fold')}, not {keys['fold']}")
        records[keys["fold"], keys["rank"], keys["adjective"]] = (path, record)
    return records


def _quality_metric(used: list[tuple[str, dict]]) -> str:
    """fid_inception when every used record has a number for it, else the in-domain distance."""
    names = set()
    for path, record in used:
        try:
            names.add(selection_metric(record))
        except MeddapError as err:
            raise MeddapError(f"{path}: {err}") from None
    if names == {INCEPTION}:
        return INCEPTION
    return selection_metric({k: v for k, v in used[0][1].items() if k != INCEPTION})


def _quality_cell(group: pd.DataFrame, records: dict, metric: str) -> dict:
    """Mean `metric` of the synthetic sets a group of runs used; empty for real-only groups."""
    if group.ratio.isna().all():
        empty = {"quality_metric": "", "quality_scale": "", "quality_sources": ""}
        return {**empty, "quality_mean": float("nan")}
    found = [_quality_for(run, records) for run in group.itertuples()]
    values = []
    for path, record in found:
        if not isinstance(record.get(metric), (int, float)):
            raise MeddapError(f"{path} has no number under {metric}")
        values.append(float(record[metric]))
    return {
        "quality_metric": metric,
        "quality_scale": metric_scale(metric, _image_size(found)),
        "quality_mean": float(np.mean(values)),
        "quality_sources": ";".join(path for path, _ in found),
    }


def _image_size(found: list[tuple[str, dict]]) -> int:
    """The one image size at which the records' in-domain features were taken."""
    sizes = {record.get("image_size") for _, record in found}
    if len(sizes) != 1 or not isinstance(size := sizes.pop(), int):
        raise MeddapError(f"{found[0][0]} and the other quality records differ in image_size")
    return size


def _quality_for(run: tuple, records: dict) -> tuple[str, dict]:
    key = (run.fold, run.rank, run.adjective)
    if key not in records:
        raise MeddapError(
            f"{run.source} needs the quality JSON of fold {key[0]} rank {key[1]} adjective "
            f"{key[2]}, which is not among the quality inputs"
        )
    return records[key]


def _per_fold(runs: pd.DataFrame, records: dict) -> list[dict]:
    return [
        {
            "fold": int(run.fold),
            "rank": int(run.rank),
            "trainset": run.trainset,
            "test_accuracy": float(run.test_accuracy),
            "val_accuracy": float(run.val_accuracy),
            "updates": int(run.updates),
            "best_update": int(run.best_update),
            "source": run.source,
            "quality_source": _quality_for(run, records)[0],
        }
        for run in runs.sort_values("fold").itertuples()
    ]


def _best_group(runs: pd.DataFrame, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's real-only runs and the augmented group with the best mean val accuracy.

    Candidates are the LoRA settings; the base model's (rank 0) only when there are no others.
    Ties go to the smaller ratio, then the adjective first in alphabetical order.
    """
    groups = _groups(runs[runs.model == model])
    real = [g for g in groups if g.ratio.isna().all()]
    augmented = [g for g in groups if g.ratio.notna().all()]
    augmented = [g for g in augmented if not _is_base(g)] or augmented
    if not real or not augmented:
        raise MeddapError(f"model {model} needs real-only and augmented metrics.json inputs")
    best = min(
        augmented,
        key=lambda g: (-g.val_accuracy.mean(), g.ratio.iloc[0], g.adjective.iloc[0]),
    )
    return real[0], best


def paired_p(real: pd.DataFrame, other: pd.DataFrame, column: str) -> float:
    """Paired t-test p-value over the folds both hold; NaN with fewer than 2 pairs."""
    pairs = real[["fold", column]].merge(other[["fold", column]], on="fold")
    if len(pairs) < 2:
        return float("nan")
    return float(ttest_rel(pairs[f"{column}_x"], pairs[f"{column}_y"]).pvalue)


def _scored_row(group: pd.DataFrame, real: pd.DataFrame, columns: dict[str, str]) -> dict:
    """mean, std, text and p-value (vs `real`; NaN for real itself) of each named column."""
    row = {**_describe(group), "val_accuracy_mean": float(group.val_accuracy.mean())}
    for name, column in columns.items():
        summary = summarise(group[column], percent=name in ("accuracy", "balanced_accuracy"))
        row |= {f"{name}_mean": summary["mean"], f"{name}_std": summary["std"]}
        p = float("nan") if group.ratio.isna().all() else paired_p(real, group, column)
        row |= {name: summary["text"], f"p_{name}": p}
    return row


def _table2_rows(runs: pd.DataFrame, model: str) -> pd.DataFrame:
    real, best = _best_group(runs, model)
    columns = {m: f"test_{m}" for m in TABLE2_METRICS}
    return pd.DataFrame([_scored_row(g, real, columns) for g in (real, best)])


def _table3_rows(runs: pd.DataFrame, model: str, external: str) -> pd.DataFrame:
    real, best = _best_group(runs, model)
    column = f"external:{external}"
    for group in (real, best):
        if group[column].isna().any():
            raise MeddapError(f"{group.source.iloc[0]} lacks the external dataset {external}")
    rows = [_scored_row(g, real, {"accuracy": column}) for g in (real, best)]
    return pd.DataFrame(rows).assign(external=external)


def _write_table(
    frame: pd.DataFrame, shown: list[str], caption: str, parquet: str, csv: str, markdown: str
) -> None:
    """Tables 1-3 (`write_table`), their rows renumbered and ratios as nullable integers."""
    frame = frame.reset_index(drop=True).astype({"ratio": "Int64"})
    write_table(frame, parquet, csv, markdown, caption, frame[shown])
