"""A segmenter run's summaries: per split, the means of its per-image scores; its metrics.json.

Light on purpose (pandas only): the `segmenter_metrics` job runs once per segmenter and would
otherwise spend seconds importing MONAI and torch to average a table. The per-image scores come
from `meddap.seg.metrics`.
"""

from __future__ import annotations

import math

import pandas as pd

from meddap.common.atomic import read_json, write_json
from meddap.common.errors import MeddapError

OVERLAP = ("dice", "iou", "precision", "recall")
DISTANCE = ("hd95", "assd")
METRICS = (*OVERLAP, *DISTANCE)


def segmenter_metrics(*, fit_record: str, scores: str, external: list[str], metrics: str) -> None:
    """Job: metrics.json of a run: its fit record, val and test summaries, one per external set."""
    table = pd.read_parquet(scores)
    sections = {split: summarise(rows) for split, rows in table.groupby("split", sort=True)}
    if set(sections) != {"val", "test"}:
        raise MeddapError(f"{scores} must hold the val and test splits, found {sorted(sections)}")
    sections["external"] = {}
    for path in external:
        rows = pd.read_parquet(path)
        names = rows["split"].unique()
        if len(names) != 1 or not names[0].startswith("external:"):
            raise MeddapError(f"{path} must hold the scores of one external dataset")
        sections["external"][names[0].removeprefix("external:")] = summarise(rows)
    write_json(read_json(fit_record) | sections, metrics)


def summarise(scores: pd.DataFrame) -> dict:
    """Per metric the mean over images ('mean') and per label; image and undefined counts."""
    labels = sorted(scores["label"].unique())
    summary: dict = {
        name: {
            "mean": _mean(scores[name]),
            **{label: _mean(scores.loc[scores["label"] == label, name]) for label in labels},
        }
        for name in METRICS
    }
    counts = scores["label"].value_counts()
    summary["n_images"] = {"all": len(scores), **{k: int(v) for k, v in counts.items()}}
    summary["undefined"] = {name: int(scores[name].isna().sum()) for name in DISTANCE}
    return summary


def _mean(values: pd.Series) -> float | None:
    """The mean of the defined values; None (JSON null) when there is none."""
    mean = float(values.mean())
    return None if math.isnan(mean) else mean
