"""The segmentation table: model x training set, in-domain test and external (zero-shot) scores.

One row per model, training set and evaluation set (`test`, the fold's in-domain test split, or
`external:<dataset>`): Dice and IoU in % and HD95 and ASSD in pixels at the evaluated size, each
the mean ± sample std over folds of the fold's mean over images, with a paired t-test over folds
against the model's `real` training set. Every row names the metrics.json files it came from.
"""

from __future__ import annotations

import pandas as pd

from meddap.common.atomic import atomic_path, read_json, write_json, write_parquet
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.report.tables import markdown_table, paired_p, summarise
from meddap.seg.names import DSUNET, supervision_of

METRICS = ("dice", "iou", "hd95", "assd")
PERCENT = ("dice", "iou")
ABLATION_METRICS = ("dice", "precision", "recall", "iou", "hd95", "assd")
ABLATION_CAPTION = (
    "Deep-supervision ablation (seed 003, Table 2): each dsunet trained on real, by supervised "
    "decoder stages (counted from the output) and with or without discriminators; in-domain "
    "test Dice, precision, recall and IoU in %, HD95 and ASSD in pixels at {size} px (mean ± "
    "sample std over folds of each fold's mean over images; HD95/ASSD leave out images where "
    "truth or prediction is empty). Source files are listed in the CSV/Parquet."
)
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


def _runs(metrics: list[str], names: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """One row per metrics.json and evaluation set: keys, the `names` means, the source."""
    if not metrics:
        raise MeddapError("the segmentation table needs at least one metrics.json, got none")
    rows = []
    for path in metrics:
        record = read_json(path)
        try:
            keys = {k: record[k] for k in ("model", "trainset", "fold")}
            sections = {"test": record["test"]}
            sections |= {f"external:{k}": v for k, v in record["external"].items()}
            for name, section in sections.items():
                means = {m: section[m]["mean"] for m in names}
                rows.append({**keys, "evaluated_on": name, **means, "source": path})
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a segmenter metrics.json") from None
    runs = pd.DataFrame(rows).astype({m: float for m in names})
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


def seg_cell(
    *,
    metrics: list[str],
    cell: str,
    model: str,
    trainset: str,
    evaluated_on: str,
    dataset: str,
    image_size: int,
) -> None:
    """Job: one segmentation-table row as JSON (its numbers, per-fold values, sha256 of sources).

    `evaluated_on` is `test` or an external dataset's name; the inputs are the row's
    metrics.json files and, for a p-value, those of the model's `real` set.
    """
    runs = _runs(metrics)
    name = "test" if evaluated_on == "test" else f"external:{evaluated_on}"
    chosen = (runs.model == model) & (runs.trainset == trainset) & (runs.evaluated_on == name)
    if not chosen.any():
        raise MeddapError(f"no metrics.json among the inputs scores {model} {trainset} on {name}")
    group = runs[chosen]
    row = _row(group, runs, (model, None, trainset, None, name))
    scores = {
        m: {"text": row[m], "mean": row[f"{m}_mean"], "std": row[f"{m}_std"], "p": row[f"p_{m}"]}
        for m in METRICS
    }
    write_json(
        {
            "table": "seg_table",
            "dataset": dataset,
            "model": model,
            "trainset": trainset,
            "evaluated_on": name,
            "units": f"dice and iou as fractions, hd95 and assd in pixels at {image_size} px",
            "scores": scores,
            "per_fold": group[["fold", *METRICS, "source"]].to_dict("records"),
            "sources": [{"path": p, "sha256": file_sha256(p)} for p in sorted(set(metrics))],
        },
        cell,
    )


def seg_ablation(
    *, metrics: list[str], parquet: str, csv: str, markdown: str, dataset: str, image_size: int
) -> None:
    """Job: seed 003's Table 2 from the real-trained dsunet-* runs among `metrics`."""
    runs = _runs(metrics, ABLATION_METRICS)
    runs = runs[
        runs.model.str.startswith(f"{DSUNET}-")
        & (runs.trainset == "real")
        & (runs.evaluated_on == "test")
    ]
    if runs.empty:
        raise MeddapError("the ablation table needs a real-trained dsunet-* metrics.json, got none")
    rows = [_ablation_row(group) for _, group in runs.groupby("model", sort=False)]
    frame = pd.DataFrame(rows).sort_values(["stages", "adversarial"], ignore_index=True)
    frame = frame.assign(dataset=dataset, image_size=image_size)
    shown = ["model", "stages", "adversarial", "n_folds", *ABLATION_METRICS]
    write_parquet(frame, parquet)
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(markdown) as tmp:
        caption = ABLATION_CAPTION.format(size=image_size)
        tmp.write_text(f"{caption}\n\n{markdown_table(frame[shown])}\n")


def _ablation_row(group: pd.DataFrame) -> dict:
    """One dsunet's stages, adversarial flag and mean ± std over folds of each metric."""
    model = group.model.iloc[0]
    supervision = supervision_of(model)
    row = {"model": model, "stages": supervision.stages, "adversarial": supervision.adversarial}
    row |= {"n_folds": len(group), "folds": ";".join(map(str, group.fold))}
    for metric in ABLATION_METRICS:
        summary = summarise(group[metric].dropna(), percent=metric not in ("hd95", "assd"))
        row |= {metric: summary["text"], f"{metric}_mean": summary["mean"]}
        row[f"{metric}_std"] = summary["std"]
    return row | {"sources": ";".join(group.source)}
