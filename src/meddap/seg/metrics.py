"""Segmentation metrics from MONAI, per image, in pixels at the evaluated size.

A prediction is the main head's sigmoid above 0.5 (logit above 0). Per image: Dice, IoU,
precision and recall (MONAI's confusion matrix), HD95 (95th-percentile Hausdorff distance) and
ASSD (symmetric average surface distance). Empty masks follow MTL: when truth and
prediction are both empty, Dice, IoU, precision and recall are 1; when exactly one is empty they
are 0; HD95 and ASSD are undefined there, left out of every mean and counted (`undefined`).
Their summary per split is `meddap.seg.summary`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_confusion_matrix_metric,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
    get_confusion_matrix,
)

from meddap.seg.summary import DISTANCE


def overlap_scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Dice, IoU, precision and recall per image of binary masks (N, 1, H, W)."""
    predicted, truth = predicted.double(), truth.double()
    matrix = get_confusion_matrix(predicted, truth)
    overlap = {
        "dice": compute_dice(predicted, truth, ignore_empty=False),
        "iou": compute_iou(predicted, truth, ignore_empty=False),
        "precision": compute_confusion_matrix_metric("precision", matrix),
        "recall": compute_confusion_matrix_metric("recall", matrix),
    }
    both, one = _empty(predicted, truth)
    ruled = {k: torch.where(both, 1.0, torch.where(one, 0.0, v[:, 0])) for k, v in overlap.items()}
    return {k: v.numpy() for k, v in ruled.items()}


def image_scores(predicted: torch.Tensor, truth: torch.Tensor) -> pd.DataFrame:
    """One row per image of binary masks (N, 1, H, W): the metrics and both pixel counts."""
    predicted, truth = predicted.double(), truth.double()
    scores = overlap_scores(predicted, truth)
    both, one = _empty(predicted, truth)
    defined = (~(both | one)).numpy()
    for name in DISTANCE:
        scores[name] = np.full(len(truth), np.nan)
    if defined.any():
        p, t = predicted[defined], truth[defined]
        hd95 = compute_hausdorff_distance(p, t, include_background=True, percentile=95)
        assd = compute_average_surface_distance(p, t, include_background=True, symmetric=True)
        scores["hd95"][defined] = hd95[:, 0].numpy()
        scores["assd"][defined] = assd[:, 0].numpy()
    counts = {"truth_pixels": truth.sum((1, 2, 3)), "predicted_pixels": predicted.sum((1, 2, 3))}
    return pd.DataFrame(scores | {k: v.long().numpy() for k, v in counts.items()})


def _empty(predicted: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: both masks empty; exactly one empty."""
    pred_empty, truth_empty = predicted.sum((1, 2, 3)) == 0, truth.sum((1, 2, 3)) == 0
    return pred_empty & truth_empty, pred_empty != truth_empty
