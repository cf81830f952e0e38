"""MTL's tables: modes x DO x PR (its Table 5) and per-class scores (its Tables 8 and 9).

One row per backbone, mode and PR (`no`, or `yes` for the modes that predict both class and
mask), each score the mean ± sample std over folds of the fold's test value, in %. Dice is the
mean over images with MTL's empty-mask rule (a normal image scores 1 when its predicted mask
is empty too); a single-task mode's unmeasured half is n/a. Every row names its metrics.json
files; a single cell is one row as JSON with its per-fold values and the sha256 of each source.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meddap.common.atomic import read_json, write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.labels import CLASSES
from meddap.common.tables import write_table
from meddap.multitask.modes import parse_mode
from meddap.report.tables import (
    COMPUTE,
    COMPUTE_CAPTION,
    compute_cells,
    summarise_defined,
)

COLUMNS = {
    "table5": ("dice", "f1_weighted", "accuracy", "balanced_accuracy", "incoherence_rate"),
    "per_class": (
        *(f"dice_{c}" for c in CLASSES),
        *(f"f1_{c}" for c in CLASSES),
        *(f"recall_{c}" for c in CLASSES),
        "accuracy",
    ),
}
CAPTIONS = {
    "table5": "Multi-task segmentation and classification (MTL, Table 5): mean Dice",
    "per_class": "Per-class scores (MTL, Tables 8 and 9): Dice, F1 and recall per class",
}
CAPTION_TAIL = (
    " on the in-domain test split at {size} px, in % (mean ± sample std over folds); Dice "
    "includes normal images (1 when their predicted mask is empty, else 0); DO = deterministic "
    "oversampling, PR = prediction refining; n/a where a single-task mode does not predict that "
    "half, or where no test image of any fold is of that class. Source files are listed in the "
    "CSV/Parquet."
)
COMPUTE_TAIL = COMPUTE_CAPTION.format(key="multitask") + " A combined mode's are its two runs'."
KEYS = ["backbone", "mode", "pr"]


def multitask_table(
    *,
    metrics: list[str],
    parquet: str,
    csv: str,
    markdown: str,
    table: str,
    dataset: str,
    image_size: int,
) -> None:
    """Job: table `table` (`table5` or `per_class`) of the multi-task runs' metrics.json."""
    if table not in COLUMNS:
        raise MeddapError(f"multi-task table {table!r} is not one of {sorted(COLUMNS)}")
    runs = fold_runs(metrics)
    frame = pd.DataFrame([_row(g, COLUMNS[table]) for _, g in runs.groupby(KEYS, sort=False)])
    frame = frame.assign(dataset=dataset, image_size=image_size)
    shown = ["backbone", "mode", "task", "do", "lambda", "pr", "n_folds", *COMPUTE]
    shown += COLUMNS[table]
    caption = CAPTIONS[table] + CAPTION_TAIL.format(size=image_size) + COMPUTE_TAIL
    write_table(frame, parquet, csv, markdown, caption, frame[shown])


def fold_runs(metrics: list[str]) -> pd.DataFrame:
    """One row per metrics.json and PR choice: keys, every score (NaN where unmeasured)."""
    if not metrics:
        raise MeddapError("the multi-task tables need at least one metrics.json, got none")
    rows = []
    for path in metrics:
        record = read_json(path)
        try:
            keys = {k: record[k] for k in ("backbone", "mode", "fold", "updates", "best_update")}
            sections = {"no": record["raw"], "yes": record["pr"]}
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a multi-task metrics.json") from None
        for pr, scores in sections.items():
            if scores is not None:
                rows.append({**keys, "pr": pr, **_flat(scores, path), "source": path})
    runs = pd.DataFrame(rows)
    duplicated = runs.duplicated([*KEYS, "fold"])
    if duplicated.any():
        raise MeddapError(f"{runs[duplicated].source.iloc[0]} repeats a fold's run")
    return runs.sort_values("fold", kind="stable")  # groups keep the grid's order


def _flat(scores: dict, path: str) -> dict[str, float]:
    """The table's scores of one section, NaN where the mode leaves them null."""
    try:
        dice, f1, recall = (scores[k] or {} for k in ("dice", "f1", "recall"))
        flat = {"dice": dice.get("mean"), "f1_weighted": f1.get("weighted")}
        flat |= {f"dice_{c}": dice.get(c) for c in CLASSES}
        flat |= {f"f1_{c}": f1.get(c) for c in CLASSES}
        flat |= {f"recall_{c}": recall.get(c) for c in CLASSES}
        flat |= {k: scores[k] for k in ("accuracy", "balanced_accuracy", "incoherence_rate")}
    except (KeyError, TypeError, AttributeError) as err:
        raise MeddapError(f"{path}: a scores section lacks {err}") from None
    return {k: np.nan if v is None else float(v) for k, v in flat.items()}


def _row(group: pd.DataFrame, columns: tuple[str, ...]) -> dict:
    """The keys, the mode's parts and each column's mean ± std of one group of folds."""
    mode = parse_mode(group["mode"].iloc[0])
    row = {k: group[k].iloc[0] for k in KEYS}
    row |= {"task": mode.task, "do": "yes" if mode.oversample else "no"}
    row |= {"lambda": mode.loss_weight if mode.task != "combined" else np.nan}
    row |= {"n_folds": len(group), "folds": ";".join(map(str, group.fold)), **compute_cells(group)}
    for column in columns:
        summary = summarise_defined(group[column])
        row |= {column: summary["text"], f"{column}_mean": summary["mean"]}
        row[f"{column}_std"] = summary["std"]
    return row | {"sources": ";".join(group.source)}


def multitask_cell(
    *, metrics: list[str], cell: str, backbone: str, mode: str, pr: str, image_size: int
) -> None:
    """Job: one multi-task row (backbone, mode, PR `no` or `yes`) as JSON with its per-fold
    values and the sha256 of each metrics.json."""
    runs = fold_runs(metrics)
    chosen = (runs.backbone == backbone) & (runs["mode"] == mode) & (runs.pr == pr)
    if not chosen.any():
        raise MeddapError(f"no metrics.json among the inputs scores {backbone} {mode} with PR {pr}")
    group = runs[chosen]
    columns = tuple(dict.fromkeys(c for cs in COLUMNS.values() for c in cs))
    row = _row(group, columns)
    write_json(
        {
            "table": "multitask",
            **{k: row[k] for k in (*KEYS, "task", "do", "lambda")},
            "units": f"fractions; dice at {image_size} px",
            "scores": {c: {"text": row[c], "mean": row[f"{c}_mean"]} for c in columns},
            "per_fold": group[["fold", *columns, "source"]].to_dict("records"),
            "sources": [{"path": p, "sha256": file_sha256(p)} for p in sorted(set(metrics))],
        },
        cell,
    )
