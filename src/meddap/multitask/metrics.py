"""MTL's scores of joint predictions: per-class Dice with normals, F1, accuracy, coherence.

A class without a true image has no Dice, F1 or recall (null), though it may be predicted; balanced
accuracy is the mean recall over the classes the truth holds (scikit-learn's convention).
Dice per image follows the segmentation track's empty-mask rule (`meddap.seg.metrics`): a normal
image scores 1 when its predicted mask is empty too, else 0. Class scores come from
scikit-learn; the incoherence rate is the share of images whose class and mask disagree
(`meddap.multitask.refine.incoherent`).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from meddap.common.labels import CLASSES
from meddap.multitask.refine import incoherent
from meddap.seg.metrics import overlap_scores


def joint_scores(
    classes: torch.Tensor, masks: torch.Tensor, true_classes: torch.Tensor, true_masks: torch.Tensor
) -> dict:
    """Scores of predicted class indices (N,) and binary masks (N, 1, H, W) against the truth."""
    dice = overlap_scores(masks, true_masks)["dice"]
    truth, predicted = true_classes.numpy(), classes.numpy()
    labels = list(range(len(CLASSES)))
    _, recall, per_class_f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    return {
        "dice": {
            "mean": float(dice.mean()),
            **{name: _mean(dice[truth == k]) for k, name in enumerate(CLASSES)},
        },
        "f1": {
            "weighted": float(np.average(per_class_f1, weights=support)),
            **{name: _defined(per_class_f1[k], truth == k) for k, name in enumerate(CLASSES)},
        },
        "recall": {name: _defined(recall[k], truth == k) for k, name in enumerate(CLASSES)},
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "confusion_matrix": {
            "labels": list(CLASSES),
            "counts": confusion_matrix(truth, predicted, labels=labels).tolist(),
        },
        "incoherence_rate": float(incoherent(classes, masks).double().mean()),
        "n_images": len(truth),
    }


def _defined(value: float, present: np.ndarray) -> float | None:
    """A class' score; None (JSON null) when the truth has no image of the class."""
    return float(value) if present.any() else None


def _mean(values: np.ndarray) -> float | None:
    """Mean of a class' values; None (JSON null) when the class has no image."""
    return float(values.mean()) if len(values) else None
