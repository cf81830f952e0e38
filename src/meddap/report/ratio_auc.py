"""The AUC half of ClinicalPrior's Table 3: classifiers trained on the mask-conditioned 1:k sets.

One row per classifier model, setting and ratio (`-` 1:0 for the real-only classifier), one
column group per evaluation set: `auc_{model}_{evaluation}` is the mean ± sample std over folds
of the macro AUC (test: over the three classes; external: benign vs malignant), with `_mean` and
`_std`; `auc_{model}_val_pick` marks the ratio of highest mean val macro AUC per setting (ties:
fewer synthetic images); `auc_{model}_sources` names the metrics.json files.
"""

from __future__ import annotations

import pandas as pd

from meddap.common.atomic import read_json
from meddap.common.errors import MeddapError
from meddap.report.tables import summarise
from meddap.trainsets.pairs import PairSet

KEYS = ["setting", "ratio"]
PICK = "_val_pick"
AUC_CAPTION = (
    " auc_{classifier}_{set}: the classifier trained on the same real:synthetic set (1:k only; "
    "n/a on patch-mixed rows), macro AUC mean ± sample std over folds (val, test: three "
    "classes; external: benign vs malignant); '*' marks the ratio the classifier would pick by "
    "mean val AUC (ties: fewer synthetic images), a validation pick."
)


def auc_columns(classifiers: list[str]) -> pd.DataFrame:
    """The AUC columns of every classifier model, one row per (setting, ratio)."""
    runs = _auc_runs(classifiers)
    parts = [_model_columns(model, group) for model, group in runs.groupby("model")]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on=KEYS, how="outer")
    return merged


def auc_names(columns: pd.Index) -> list[str]:
    """The text columns among `columns`: `auc_{model}_{evaluation}`, not its _mean, _std,
    _val_pick or _sources."""
    suffixes = ("_mean", "_std", PICK, "_sources")
    return [c for c in columns if c.startswith("auc_") and not c.endswith(suffixes)]


def marked_auc(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Each AUC text column with " *" on the rows of its classifier's val pick (for Markdown)."""
    marked = {}
    for pick in [c for c in frame.columns if c.startswith("auc_") and c.endswith(PICK)]:
        prefix = pick.removesuffix(PICK) + "_"
        for column in [c for c in auc_names(frame.columns) if c.startswith(prefix)]:
            chosen = frame[pick].fillna(False).astype(bool)
            marked[column] = frame[column].where(~chosen, frame[column] + " *")
    return marked


def _auc_runs(classifiers: list[str]) -> pd.DataFrame:
    """One row per classifier metrics.json and evaluation set: keys, macro AUC, source."""
    rows = []
    for path in classifiers:
        record = read_json(path)
        try:
            keys = {"model": record["model"], "trainset": record["trainset"]}
            keys |= {"fold": record["fold"]}
            sections = {"val": record["val"], "test": record["test"]}
            sections |= {f"external:{k}": v for k, v in record["external"].items()}
            for name, section in sections.items():
                auc = section["macro"]["auc"]
                rows.append({**keys, "evaluated_on": name, "auc": auc, "source": path})
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a classifier metrics.json") from None
    runs = pd.DataFrame(rows).astype({"auc": float})
    parsed = runs.trainset.map(PairSet.parse)
    return runs.assign(
        setting=parsed.map(lambda m: m.setting if m else "-"),
        ratio=parsed.map(lambda m: m.ratio if m else "1:0"),
        _share=parsed.map(lambda m: m.synthetic if m else 0),
    )


def _model_columns(model: str, runs: pd.DataFrame) -> pd.DataFrame:
    """One classifier model's AUC texts, means and stds per (setting, ratio), and its val pick."""
    evaluations = ["val", "test", *sorted(set(runs.evaluated_on) - {"val", "test"})]
    rows = []
    for (setting, ratio), group in runs.groupby(KEYS):
        row = {"setting": setting, "ratio": ratio, "_share": group["_share"].iloc[0]}
        for name in evaluations:
            values = group.auc[group.evaluated_on == name].dropna()
            summary = summarise(values, percent=False) if len(values) else _missing()
            column = f"auc_{model}_{name.replace('external:', '')}"
            row |= {column: summary["text"], f"{column}_mean": summary["mean"]}
            row[f"{column}_std"] = summary["std"]
        rows.append(row | {f"auc_{model}_sources": ";".join(sorted(set(group.source)))})
    frame = pd.DataFrame(rows)
    val = frame[f"auc_{model}_val_mean"]
    picked = pd.Series(False, index=frame.index)
    for _, group in frame[(frame.setting != "-") & val.notna()].groupby("setting"):
        best = group[f"auc_{model}_val_mean"].max()
        tied = group[group[f"auc_{model}_val_mean"] >= best - 1e-12]
        picked[tied["_share"].idxmin()] = True
    return frame.assign(**{f"auc_{model}{PICK}": picked}).drop(columns="_share")


def _missing() -> dict:
    return {"mean": float("nan"), "std": float("nan"), "text": "n/a"}
