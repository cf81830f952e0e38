"""ClinicalPrior's Table 2: the generator adapted to another dataset, scored on that dataset.

Rows are (target, adaptation): `none` (the base generator as it is), `r<k>` (a LoRA of rank k
trained on the target's train split) and `full` (every UNet weight fine-tuned on it). Columns are
the mean ± std over the configured folds of each quality metric of the adapted generator's
synthetic set against the target's train split, the trained parameters of this model, and those
the same adaptation has on the SD v1.x UNet (`meddap lora-params`).
"""

from __future__ import annotations

import pandas as pd

from meddap.common.atomic import read_json
from meddap.common.errors import MeddapError
from meddap.common.tables import write_table
from meddap.lora.names import NONE, adaptation_rank
from meddap.lora.params import count_lora_params
from meddap.report.tables import summarise
from meddap.synth.quality import INCEPTION_KEYS
from meddap.synth.rank import metric_scale

CAPTION = (
    "Cross-domain adaptation (ClinicalPrior's Table 2): the generator adapted to each target's "
    "train split, its synthetic set scored against that split (mean ± std over folds; lower is "
    "closer). "
    "Numbers hold on this machine: other CPUs give other numbers."
)


def cross_domain_table(
    *,
    quality: list[str],
    params_json: list[str],
    parquet: str,
    csv: str,
    markdown: str,
    sets: list[dict],
    lora_targets: str,
) -> None:
    """Job: one row per (target, adaptation) from the quality JSON of each (target, fold,
    adaptation) in `sets` and the params.json of each trained one (same order, `none` left out)."""
    if len(quality) != len(sets):
        raise MeddapError(f"{len(quality)} quality JSON inputs but {len(sets)} sets")
    trained = [keys for keys in sets if keys["adaptation"] != NONE]
    if len(params_json) != len(trained):
        raise MeddapError(f"{len(params_json)} params.json inputs but {len(trained)} trained sets")
    counts = {_key(k): read_json(p)["trainable"] for k, p in zip(trained, params_json, strict=True)}
    runs = pd.DataFrame(
        [
            _run(path, keys, counts.get(_key(keys), 0))
            for path, keys in zip(quality, sets, strict=True)
        ]
    )
    groups = runs.groupby(["target", "adaptation"], sort=False)  # in the order of `sets`
    frame = pd.DataFrame([_row(group, lora_targets) for _, group in groups])
    shown = {"target": "target", "adaptation": "adaptation", "params": "trained params"}
    shown |= {"params_sd15": "params on SD v1.x"}
    size = _image_size(runs)
    metrics = [m for m in sorted(runs.columns, key=_order) if _is_metric(m)]
    shown |= {f"{m} text": metric_scale(m, size) for m in metrics}
    write_table(frame, parquet, csv, markdown, CAPTION, frame[list(shown)].rename(columns=shown))


def _image_size(runs: pd.DataFrame) -> int:
    """The one image size of every run's in-domain features."""
    sizes = set(runs.image_size)
    if len(sizes) != 1:
        raise MeddapError(f"the quality records differ in image_size ({sorted(sizes)})")
    return int(sizes.pop())


def _order(metric: str) -> tuple[bool, bool]:
    """Inception before in-domain, FID/FD before KID."""
    return "inception" not in metric, metric.startswith("kid_")


def _key(keys: dict) -> tuple:
    return keys["target"], keys["fold"], keys["adaptation"]


def _run(path: str, keys: dict, trainable: int) -> dict:
    """One (target, fold, adaptation)'s metrics, checked against the fold it claims."""
    record = read_json(path)
    if record.get("fold") != keys["fold"]:
        raise MeddapError(f"{path} scores fold {record.get('fold')}, not {keys['fold']}")
    metrics = {k: record[k] for k in record if _is_metric(k)}
    if not isinstance(record.get("image_size"), int):
        raise MeddapError(f"{path} has no image_size (expected the quality job's record)")
    size = record["image_size"]
    return {**keys, **metrics, "image_size": size, "trainable": trainable, "source": path}


def _is_metric(key: str) -> bool:
    """FID and KID means: Inception's and the in-domain ones (`fd_*_real_only`, `kid_*_mean`)."""
    in_domain = key.startswith(("fd_", "kid_")) and "_real_only" in key
    return (key in INCEPTION_KEYS or in_domain) and not key.endswith("_std")


def _row(group: pd.DataFrame, lora_targets: str) -> dict:
    """Mean ± std of each metric over the group's folds, with the parameter counts."""
    adaptation = group.adaptation.iloc[0]
    rank = adaptation_rank(adaptation)
    row = {
        "target": group.target.iloc[0],
        "adaptation": adaptation,
        "params": int(group.trainable.iloc[0]),
        "params_sd15": 0 if rank == 0 else int(count_lora_params(rank, lora_targets)["trainable"]),
        "n_folds": len(group),
        "sources": ";".join(group.source),
    }
    for metric in [c for c in group.columns if _is_metric(c)]:
        values = pd.to_numeric(group[metric], errors="coerce")
        if values.isna().any():
            row[f"{metric} text"] = "n/a"
            continue
        summary = summarise(values, percent=False)
        row |= {
            metric: summary["mean"],
            f"{metric} std": summary["std"],
            f"{metric} text": summary["text"],
        }
    return row
