"""Fig. 1a: classifiers trained on real images only, evaluated on each synthetic set.

A good score means the synthetic images look like the real classes to a real-only classifier;
the paper reads very high scores as little new information and very low ones as images far
from the real distribution.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from meddap.atomic import atomic_path, write_json
from meddap.classify import CLASSES, load_images, predict
from meddap.errors import MeddapError
from meddap.features import load_classifier
from meddap.metrics import classification_metrics

BATCH_SIZE = 64
KEYS = ("fold", "rank", "adjective")


def evaluate_on_synthetic(
    *, classifier: str, synth_manifest: str, result: str, model: str, image_size: int
) -> None:
    """Job: accuracy (and per-class scores) of a real-only classifier on one synthetic set."""
    table = pd.read_parquet(synth_manifest)
    missing = [c for c in ("label", "image_path", "index", *KEYS) if c not in table.columns]
    if missing:
        raise MeddapError(f"{synth_manifest} lacks the columns {missing}")
    table = table.sort_values("index", kind="stable")
    keys = {key: _single(table, key, synth_manifest) for key in KEYS}
    net = load_classifier(model, classifier)
    probs = predict(net, load_images(list(table.image_path), image_size), BATCH_SIZE)
    scores = classification_metrics(list(table.label), probs, CLASSES)
    source = {"classifier": classifier, "synth_manifest": synth_manifest}
    write_json({"model": model, "image_size": image_size, **keys, **source, **scores}, result)


def figure_1a(*, results: list[str], figure: str) -> None:
    """Job: accuracy per adjective of each real-only classifier on the synthetic sets (Fig. 1a).

    Small dots are folds; large markers with bars are the mean ± sample std over folds.
    """
    frame = _results_frame(results)
    adjectives = sorted(frame.adjective.unique(), key=lambda a: (a != "none", a))
    models = sorted(frame.model.unique())
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * len(adjectives)), 3.2))
    for k, model in enumerate(models):
        offset = (k - (len(models) - 1) / 2) * 0.15
        rows = frame[frame.model == model]
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
            label=model,
        )
    ax.set_xticks(range(len(adjectives)), adjectives, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy on synthetic set (%)", fontsize=8)
    ax.set_title("Real-only classifiers tested on synthetic sets", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(figure) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _single(table: pd.DataFrame, column: str, path: str) -> int | str:
    values = table[column].unique()
    if len(values) != 1:
        raise MeddapError(f"{path} must hold one {column}, got {sorted(map(str, values))}")
    value = values[0]
    return int(value) if isinstance(value, np.integer) else value


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
