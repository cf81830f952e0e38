"""MTL's metrics job: a mode's test predictions, raw and refined, against the truth.

`metrics.json` holds `raw` and `pr` (prediction refining; null where the mode predicts only a
class or only a mask) sections of `joint_scores`. A single-task mode's unmeasured half is null:
`seg` has no class scores (its class head is untrained), `cls` no Dice; the incoherence rate
needs both. `updates` is the optimizer updates of every network behind the predictions (a
`combined` mode's two single-task runs together), `best_update` the kept update of a trained
mode (null for `combined`, which keeps one per part).
"""

from __future__ import annotations

from meddap.common.atomic import read_json, write_json
from meddap.common.errors import MeddapError
from meddap.multitask.metrics import joint_scores
from meddap.multitask.modes import Mode, parse_mode
from meddap.multitask.predictions import Predictions
from meddap.multitask.tasks import class_indices
from meddap.multitask.train import fold_pairs
from meddap.seg.data import Pairs

CLASS_KEYS = ("f1", "recall", "accuracy", "balanced_accuracy", "confusion_matrix")


def multitask_metrics(
    *,
    manifest: str,
    splits: str,
    predictions: str,
    refined: list[str],
    fits: list[str],
    metrics: str,
    fold: int,
    backbone: str,
    mode: str,
    image_size: int,
) -> None:
    """Job: per-class Dice (normals included), F1, accuracy, confusion, incoherence rate."""
    parsed = parse_mode(mode)
    truth = fold_pairs(manifest, splits, fold, "test", image_size)
    sections = {"raw": _scores(predictions, truth, parsed), "pr": None}
    if refined:
        sections["pr"] = _scores(refined[0], truth, parsed)
    keys = {"backbone": backbone, "mode": mode, "fold": fold, "image_size": image_size}
    sources = {"predictions": predictions, "refined": refined[0] if refined else None}
    write_json({**keys, **_compute(fits), **sections, "sources": sources}, metrics)


def _compute(fits: list[str]) -> dict:
    """Updates made by the networks of `fits` together; the kept update when there is one."""
    records = [read_json(path) for path in fits]
    try:
        updates = sum(int(record["updates"]) for record in records)
        kept = records[0]["best_update"] if len(records) == 1 else None
    except (KeyError, TypeError) as err:
        raise MeddapError(f"{fits} lack the key {err} of a multi-task fit.json") from None
    return {"updates": updates, "best_update": kept, "fit_records": fits}


def _scores(path: str, truth: Pairs, mode: Mode) -> dict:
    """`joint_scores` of one predictions file, the mode's unmeasured half set to null."""
    predicted = Predictions.load(path)
    if predicted.ids != truth.ids:
        raise MeddapError(f"{path} does not predict the test split's images (ids differ)")
    true_classes = class_indices(truth.labels)
    scores = joint_scores(predicted.classes, predicted.masks, true_classes, truth.masks)
    if not mode.refinable:
        scores["incoherence_rate"] = None
    if not mode.has_classes:
        scores |= dict.fromkeys(CLASS_KEYS)
    if not mode.has_masks:
        scores["dice"] = None
    return scores
