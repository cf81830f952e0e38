"""The segmentation table: model x training set, in-domain test and external (zero-shot) scores.

One row per model, training set and evaluation set (`test`, the fold's in-domain test split, or
`external:<dataset>`): Dice and IoU in % and HD95 and ASSD in pixels at the evaluated size, each
the mean ± sample std over folds of the fold's mean over images, with a paired t-test over folds
against the model's `real` training set. Every row names the metrics.json files it came from.
"""

from __future__ import annotations

import pandas as pd

from meddap.common.atomic import atomic_path, write_parquet
from meddap.common.errors import MeddapError
from meddap.report.tables import paired_p, read_record, summarise, markdown_table

METRICS = ("dice", "iou", "hd95", "assd")
PERCENT = ("dice", "iou")
CAPTION = (
    "Segmentation: Dice and IoU in %, HD95 and ASSD in pixels at {size} px (mean ± sample std "
    "over folds of each fold's mean over images; HD95/ASSD leave out images where truth or "
    "prediction is empty) per segmenter, training set and evaluation set (test: in-domain test "
    "split; external: zero-shot); p = paired t-test over folds against the model's real-only "
    "set, NaN with fewer than 2 paired folds. Source files are listed in the CSV/Parquet."
)


def seg_table(
    *, metrics: list[str], parquet: str, csv: str, markdown: str, dataset: str, image_size: int
) -> None:
    """Job: the segmentation table of `dataset`'s segmenters (metrics.json of every fold)."""
    runs = _runs(metrics)
    rows = [
        _row(group, runs, keys)
        for keys, group in runs.groupby(["model", "_real", "trainset", "_test", "evaluated_on"])
    ]
    frame = pd.DataFrame(rows).assign(dataset=dataset, image_size=image_size)
    shown = ["model", "trainset", "evaluated_on", "n_folds"]
    shown += [c for m in METRICS for c in (m, f"p_{m}")]
    write_parquet(frame, parquet)
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(markdown) as tmp:
        tmp.write_text(f"{CAPTION.format(size=image_size)}\n\n{markdown_table(frame[shown])}\n")


def _runs(metrics: list[str]) -> pd.DataFrame:
    """One row per metrics.json and evaluation set: keys, the metrics' means, the source."""
    if not metrics:
        raise MeddapError("the segmentation table needs at least one metrics.json, got none")
    rows = []
    for path in metrics:
        record = read_record(path)
        try:
            keys = {k: record[k] for k in ("model", "trainset", "fold")}
            sections = {"test": record["test"]}
            sections |= {f"external:{k}": v for k, v in record["external"].items()}
            for name, section in sections.items():
                means = {m: section[m]["mean"] for m in METRICS}
                rows.append({**keys, "evaluated_on": name, **means, "source": path})
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a segmenter metrics.json") from None
    runs = pd.DataFrame(rows).astype({m: float for m in METRICS})
    key = ["model", "trainset", "evaluated_on", "fold"]
    if runs.duplicated(key).any():
        raise MeddapError(f"{runs[runs.duplicated(key)].source.iloc[0]} repeats a fold's run")
    order = {"_real": runs.trainset != "real", "_test": runs.evaluated_on != "test"}
    return runs.assign(**order).sort_values([*key[:3], "fold"])


def _row(group: pd.DataFrame, runs: pd.DataFrame, keys: tuple) -> dict:
    """mean, std, text and p-value against `real` of each metric of one group of folds."""
    model, _, trainset, _, evaluated_on = keys
    real = runs[
        (runs.model == model) & (runs.trainset == "real") & (runs.evaluated_on == evaluated_on)
    ]
    row = {"model": model, "trainset": trainset, "evaluated_on": evaluated_on}
    row |= {"n_folds": len(group), "folds": ";".join(map(str, group.fold))}
    for metric in METRICS:
        summary = summarise(group[metric].dropna(), percent=metric in PERCENT)
        p = float("nan") if trainset == "real" else paired_p(real, group, metric)
        row |= {metric: summary["text"], f"{metric}_mean": summary["mean"]}
        row |= {f"{metric}_std": summary["std"], f"p_{metric}": p}
    return row | {"sources": ";".join(group.source)}
