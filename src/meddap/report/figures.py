"""Paper figures drawn with matplotlib (written atomically as PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from meddap.cls.evaluate import KEYS
from meddap.common.errors import MeddapError
from meddap.common.images import open_gray
from meddap.common.labels import CLASSES
from meddap.common.splits import split_rows
from meddap.report.plotting import save_figure


def _pick(table: pd.DataFrame, label: str, n: int) -> list[str]:
    """The first `n` image paths of class `label` (tables are in a fixed order)."""
    return list(table[table.label == label].image_path[:n])


def _rows(manifest: str, splits: str, fold: int, synthetic: list[str]) -> dict[str, pd.DataFrame]:
    """The fold's real train images, then each synthetic set as 'r{rank} {adjective}', in order."""
    rows = {"real": split_rows(manifest, splits, fold, "train")}
    for path in synthetic:
        table = pd.read_parquet(path).sort_values("index")
        rows[f"r{table['rank'].iloc[0]} {table.adjective.iloc[0]}"] = table
    return rows


def sample_grid(
    *, manifest: str, splits: str, synthetic: list[str], figure: str, fold: int, per_class: int
) -> None:
    """Real train images and each synthetic set's images, `per_class` per class (Fig. 1b); rank 0
    rows are the base model without LoRA."""
    rows = _rows(manifest, splits, fold, synthetic)
    ncols = per_class * len(CLASSES)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(ncols * 1.2, len(rows) * 1.3), squeeze=False
    )
    for r, (name, table) in enumerate(rows.items()):
        for c, label in enumerate(CLASSES):
            paths = _pick(table, label, per_class)
            for k in range(per_class):
                ax = axes[r][c * per_class + k]
                ax.axis("off")
                if k < len(paths):
                    with open_gray(paths[k]) as gray:
                        ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
                if r == 0 and k == 0:
                    ax.set_title(label, fontsize=8, loc="left")
        axes[r][0].text(
            -0.1, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8
        )
    fig.suptitle(f"fold {fold}: real vs synthetic", fontsize=9)
    save_figure(fig, figure)


def figure_1a(*, results: list[str], figure: str) -> None:
    """Job: accuracy per adjective of each real-only classifier on the synthetic sets (Fig. 1a).

    One series per classifier for the LoRA sets and, when there are any, one for the base
    model's (rank 0). Small dots are folds; large markers with bars are the mean ± sample std.
    """
    frame = _results_frame(results)
    frame["series"] = frame.model + np.where(frame["rank"] == 0, " (base model, r0)", "")
    adjectives = sorted(frame.adjective.unique(), key=lambda a: (a != "none", a))
    series = sorted(frame.series.unique())
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * len(adjectives)), 3.2))
    for k, name in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * 0.15
        rows = frame[frame.series == name]
        x = rows.adjective.map(adjectives.index) + offset
        ax.scatter(x, rows.accuracy * 100, s=10, alpha=0.4, color=f"C{k}")
        stats = rows.groupby("adjective").accuracy.agg(["mean", "std"]).reindex(adjectives)
        ax.errorbar(
            np.arange(len(adjectives)) + offset,
            stats["mean"] * 100,
            yerr=stats["std"].fillna(0) * 100,
            fmt="o",
            color=f"C{k}",
            capsize=3,
            label=name,
        )
    ax.set_xticks(range(len(adjectives)), adjectives, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy on synthetic set (%)", fontsize=8)
    ax.set_title("Real-only classifiers tested on synthetic sets", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, figure)


def _results_frame(results: list[str]) -> pd.DataFrame:
    """model, fold, rank, adjective, accuracy of each result JSON."""
    if not results:
        raise MeddapError("Fig. 1a needs at least one synthetic-set evaluation, got none")
    rows = []
    for path in results:
        record = json.loads(Path(path).read_text())
        try:
            rows.append({key: record[key] for key in ("model", *KEYS, "accuracy")})
        except KeyError as err:
            raise MeddapError(f"{path} lacks the key {err}") from None
    return pd.DataFrame(rows)
