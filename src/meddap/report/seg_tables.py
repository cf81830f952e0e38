"""The segmentation table: model x training set, in-domain test and external (zero-shot) scores.

One row per model, training set and evaluation set (`test`, the fold's in-domain test split, or
`external:<dataset>`): Dice and IoU in % and HD95 and ASSD in pixels at the evaluated size, each
the mean ± sample std over folds of the fold's mean over images, with a paired t-test over folds
against the model's `real` training set. Every row names the metrics.json files it came from.
`seg_ratio_table` is ClinicalPrior's Table 3: Dice per real:synthetic ratio of the synthetic sets;
patch-mixed sets (DiffBoost) are rows of their own (column `mixing`, e.g. "λ=0.5 p=4", shown after
the ratio), their validation pick made among the ratios of the same setting and mixing; with
classifiers trained on the same sets, their AUC columns (`meddap.report.ratio_auc`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from meddap.common.atomic import read_json, write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.tables import write_table
from meddap.report.ratio_auc import AUC_CAPTION, PICK, auc_columns, auc_names, marked_auc
from meddap.report.tables import (
    COMPUTE,
    COMPUTE_CAPTION,
    compute_cells,
    paired_p,
    summarise,
    summarise_defined,
)
from meddap.seg.registry import DSUNET, supervision_of
from meddap.trainsets.pairs import PairSet

METRICS = ("dice", "iou", "hd95", "assd")
UPDATES = ("updates", "best_update")
PERCENT = ("dice", "iou")
ABLATION_METRICS = ("dice", "precision", "recall", "iou", "hd95", "assd")
ABLATION_CAPTION = (
    "Deep-supervision ablation (DSUNet, Table 2): each dsunet trained on real, by supervised "
    "decoder stages (counted from the output) and with or without discriminators; in-domain "
    "test Dice, precision, recall and IoU in %, HD95 and ASSD in pixels at {size} px (mean ± "
    "sample std over folds of each fold's mean over images; HD95/ASSD leave out images where "
    "truth or prediction is empty). Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="segmentation")
CAPTION = (
    "Segmentation: Dice and IoU in %, HD95 and ASSD in pixels at {size} px (mean ± sample std "
    "over folds of each fold's mean over images; HD95/ASSD leave out images where truth or "
    "prediction is empty) per segmenter, training set and evaluation set (test: in-domain test "
    "split; external: zero-shot); p = paired t-test over folds against the model's real-only "
    "set, NaN with fewer than 2 paired folds. Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="segmentation")


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
    shown = ["model", "trainset", "evaluated_on", "n_folds", *COMPUTE]
    shown += [c for m in METRICS for c in (m, f"p_{m}")]
    write_table(frame, parquet, csv, markdown, CAPTION.format(size=image_size), frame[shown])


def _runs(metrics: list[str], names: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """One row per metrics.json and evaluation set: keys, the `names` means, the source."""
    if not metrics:
        raise MeddapError("the segmentation table needs at least one metrics.json, got none")
    rows = []
    for path in metrics:
        record = read_json(path)
        try:
            keys = {k: record[k] for k in ("model", "trainset", "fold", "updates", "best_update")}
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
    row |= {"n_folds": len(group), "folds": ";".join(map(str, group.fold)), **compute_cells(group)}
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
            "per_fold": group[["fold", *METRICS, *UPDATES, "source"]].to_dict("records"),
            "sources": [{"path": p, "sha256": file_sha256(p)} for p in sorted(set(metrics))],
        },
        cell,
    )


def seg_ablation(
    *, metrics: list[str], parquet: str, csv: str, markdown: str, dataset: str, image_size: int
) -> None:
    """Job: DSUNet's Table 2 from the real-trained dsunet-* runs among `metrics`."""
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
    shown = ["model", "stages", "adversarial", "n_folds", *COMPUTE, *ABLATION_METRICS]
    caption = ABLATION_CAPTION.format(size=image_size)
    write_table(frame, parquet, csv, markdown, caption, frame[shown])


def _ablation_row(group: pd.DataFrame) -> dict:
    """One dsunet's stages, adversarial flag and mean ± std over folds of each metric."""
    model = group.model.iloc[0]
    supervision = supervision_of(model)
    row = {"model": model, "stages": supervision.stages, "adversarial": supervision.adversarial}
    row |= {"n_folds": len(group), "folds": ";".join(map(str, group.fold)), **compute_cells(group)}
    for metric in ABLATION_METRICS:
        summary = summarise(group[metric].dropna(), percent=metric not in ("hd95", "assd"))
        row |= {metric: summary["text"], f"{metric}_mean": summary["mean"]}
        row[f"{metric}_std"] = summary["std"]
    return row | {"sources": ";".join(group.source)}


NO_MIXING = "-"  # the `mixing` of an unmixed (or real) row
RATIO_CAPTION = (
    "Segmentation by real:synthetic ratio (ClinicalPrior, Table 3): segmenters trained on real "
    "images plus mask- or edge-conditioned synthetic sets (setting = condition-source; ratio = "
    "real:synthetic, 0:1 synthetic only; '-' 1:0 = real only). Dice in % at {size} px, mean ± "
    "sample std over folds of each fold's mean over images, on the validation split (val_dice), "
    "the in-domain test split (test) and external sets (zero-shot); 'mix λ=… p=…': DiffBoost's "
    "patch mixing (each cell of a p x p grid shows the real parent with probability λ). '(val "
    "pick)' marks the ratio each model, setting and mixing would pick by mean validation Dice "
    "(ties: fewer synthetic images), a validation pick, not a test-set pick. HD95, ASSD and IoU "
    "are not shown. Source files are listed in the CSV/Parquet."
) + COMPUTE_CAPTION.format(key="segmentation")


def seg_ratio_table(
    *,
    metrics: list[str],
    parquet: str,
    csv: str,
    markdown: str,
    dataset: str,
    image_size: int,
    classifiers: str | Sequence[str] = (),
) -> None:
    """Job: ClinicalPrior's Table 3, Dice per model x synthetic setting x real:synthetic ratio, and
    the AUC of the classifiers trained on the same sets where `classifiers` names their runs."""
    runs = _ratio_runs(metrics)
    evaluations = ["test", *sorted(set(runs.evaluated_on) - {"test"})]
    keys = ["model", "_real", "setting", "_lambda", "_patches", "_share"]
    rows = [_ratio_row(group, evaluations) for _, group in runs.groupby(keys)]
    frame = _mark_val_picks(pd.DataFrame(rows)).assign(dataset=dataset, image_size=image_size)
    classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
    frame = _with_auc(frame, classifiers)
    shown = frame[["model", "setting", "ratio", "n_folds", *COMPUTE, "val_dice", *evaluations]]
    shown = shown.copy()
    shown["ratio"] = shown.ratio.where(
        frame.mixing == NO_MIXING, shown.ratio + " mix " + frame.mixing
    )
    shown["ratio"] = shown.ratio.where(~frame.chosen_on_val, shown.ratio + " (val pick)")
    shown = shown.assign(**marked_auc(frame))
    caption = RATIO_CAPTION.format(size=image_size) + (AUC_CAPTION if classifiers else "")
    write_table(frame, parquet, csv, markdown, caption, shown)


def _with_auc(frame: pd.DataFrame, classifiers: list[str]) -> pd.DataFrame:
    """`frame` with the AUC columns of the classifiers on each unmixed row's set ("n/a" on
    patch-mixed rows: mixing is for segmenters only); unchanged without classifiers."""
    if not classifiers:
        return frame
    auc = auc_columns(classifiers).assign(mixing=NO_MIXING)
    merged = frame.merge(auc, on=["setting", "ratio", "mixing"], how="left", validate="m:1")
    filled = {column: "n/a" for column in auc_names(auc.columns)}
    filled |= {column: False for column in auc.columns if column.endswith(PICK)}
    return merged.fillna(filled).infer_objects()


def _ratio_runs(metrics: list[str]) -> pd.DataFrame:
    """`_runs`' Dice rows of the real and ratio training sets, with setting, ratio and val Dice."""
    runs = _runs(metrics, ("dice",))
    parsed = runs.trainset.map(_synthetic_or_none)
    if not parsed.notna().any():
        raise MeddapError(
            f"none of the {len(metrics)} metrics.json inputs (e.g. {metrics[0]}) has a synthetic "
            "training set named {mask|edge}-{real|clinical}-{1to<k>|0to1}[-mix{λ}p{p}]"
        )
    real = runs.trainset == "real"
    runs, parsed = runs[real | parsed.notna()], parsed[real | parsed.notna()]
    setting = parsed.map(lambda m: m.setting if m else "-")
    ratio = parsed.map(lambda m: m.ratio if m else "1:0")
    share = parsed.map(_synthetic_share)
    mixing = {
        "mixing": parsed.map(_mixing_text),
        "_lambda": parsed.map(lambda m: m.mix_lambda if m and m.mixed else -1.0),  # sort keys
        "_patches": parsed.map(lambda m: m.mix_patches if m and m.mixed else -1),
    }
    val = _val_dice(sorted(set(runs.source)))
    return runs.assign(
        setting=setting, ratio=ratio, _share=share, **mixing, val_dice=runs.source.map(val)
    )


def _mixing_text(wanted: PairSet | None) -> str:
    """ "λ=0.5 p=4" for a patch-mixed set, NO_MIXING for the others."""
    if wanted is None or not wanted.mixed:
        return NO_MIXING
    return f"λ={wanted.mix_lambda!r} p={wanted.mix_patches}"


def _synthetic_or_none(trainset: str) -> PairSet | None:
    """The synthetic set a trainset names, None for the others (`aug-*`, real)."""
    try:
        return PairSet.parse(trainset)
    except MeddapError:  # a {condition}-{source} pair that is no setting (e.g. edge-clinical)
        return None


def _synthetic_share(wanted: PairSet | None) -> float:
    """Synthetic images per real image: 0 for `real`, infinite for synthetic only (0:1)."""
    if wanted is None:
        return 0.0
    return float("inf") if wanted.real == 0 else float(wanted.synthetic)


def _val_dice(paths: list[str]) -> dict[str, float]:
    """The validation split's mean Dice of each segmenter metrics.json (NaN where null)."""
    values = {}
    for path in paths:
        try:
            mean = read_json(path)["val"]["dice"]["mean"]
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a segmenter metrics.json") from None
        values[path] = float("nan") if mean is None else float(mean)
    return values


def _ratio_row(group: pd.DataFrame, evaluations: list[str]) -> dict:
    """One model x setting x ratio: val Dice and each evaluation set's Dice over folds."""
    test = group[group.evaluated_on == "test"]
    first = test.iloc[0]
    row = {"model": first.model, "trainset": first.trainset, "setting": first.setting}
    row |= {"ratio": first.ratio, "mixing": first.mixing, "_share": first["_share"]}
    row |= {"n_folds": len(test), "folds": ";".join(map(str, test.fold)), **compute_cells(test)}
    for name, values in [("val_dice", test.val_dice), *_dice_by_set(group, evaluations)]:
        summary = summarise_defined(values)
        row |= {name: summary["text"], f"{name}_mean": summary["mean"]}
        row[f"{name}_std"] = summary["std"]
    return row | {"sources": ";".join(test.source)}


def _dice_by_set(group: pd.DataFrame, evaluations: list[str]) -> list[tuple[str, pd.Series]]:
    """(evaluation set, per-fold Dice) of each evaluation set, empty where the group lacks it."""
    return [(name, group.dice[group.evaluated_on == name]) for name in evaluations]


def _mark_val_picks(frame: pd.DataFrame) -> pd.DataFrame:
    """`chosen_on_val`: per model, setting and mixing, the ratio of highest mean val Dice (ties:
    the smaller synthetic share); never a real row. Drops the helper `_share` column."""
    chosen = pd.Series(False, index=frame.index)
    synthetic = frame[frame.setting != "-"].dropna(subset=["val_dice_mean"])
    for _, group in synthetic.groupby(["model", "setting", "mixing"]):
        best = group.val_dice_mean.max()
        tied = group[group.val_dice_mean >= best - 1e-12]
        chosen[tied["_share"].idxmin()] = True
    return frame.assign(chosen_on_val=chosen).drop(columns="_share")
