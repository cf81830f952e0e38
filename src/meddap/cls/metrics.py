"""Classification metrics (Tables 1-3): accuracy, balanced accuracy, per-class scores, AUC.

Balanced accuracy is scikit-learn's definition: the mean recall over the classes present in the
labels (a class that is never predicted pulls it down by its share).

Per class k (one-vs-rest): sensitivity = recall, specificity = TN / (TN + FP), precision, F1
and ROC AUC of the class-k probability. A class absent from the labels (support 0) has None for
every score, and macro = the unweighted mean over the classes present (the same classes as
balanced accuracy). Otherwise a score whose denominator is zero is 0 (scikit-learn's
`zero_division=0`); an AUC is None when the labels hold only one side of the class, and the
macro AUC averages the defined ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from meddap.common.errors import MeddapError

SCORES = ("sensitivity", "specificity", "precision", "f1", "auc")
EXTERNAL_CLASSES = ("benign", "malignant")
EXTERNAL_RULE = (
    "benign vs malignant: images labelled normal are left out; every other image is predicted "
    "benign or malignant by the larger of its benign and malignant probabilities (the normal "
    "probability is ignored, ties go to benign), and the AUC scores "
    "p(malignant) / (p(benign) + p(malignant)); normal_argmax_fraction is the share of these "
    "images whose 3-class argmax was normal"
)


def classification_metrics(
    labels: Sequence[str], probabilities: np.ndarray, classes: Sequence[str]
) -> dict:
    """Metrics of argmax predictions of `probabilities` (n x len(classes)) against `labels`."""
    truth, probs = _encode(labels, probabilities, classes)
    pred = probs.argmax(axis=1)
    order = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=order, zero_division=0
    )
    specificity = _specificity(truth, pred, order)
    per_class = {
        name: {
            "sensitivity": float(recall[k]),
            "specificity": specificity[k],
            "precision": float(precision[k]),
            "f1": float(f1[k]),
            "auc": _auc(truth == k, probs[:, k]),
            "support": int(support[k]),
        }
        if support[k]
        else dict.fromkeys(SCORES, None) | {"support": 0}
        for k, name in enumerate(classes)
    }
    return {
        "n": len(truth),
        "classes": list(classes),
        "accuracy": float(accuracy_score(truth, pred)),
        "balanced_accuracy": float(np.mean(recall[support > 0])),
        "per_class": per_class,
        "macro": _macro(per_class),
        "confusion_matrix": confusion_matrix(truth, pred, labels=order).tolist(),
    }


def external_metrics(
    labels: Sequence[str], probabilities: np.ndarray, classes: Sequence[str]
) -> dict:
    """Benign-vs-malignant metrics of a model over `classes` on another dataset (see the rule)."""
    missing = [c for c in EXTERNAL_CLASSES if c not in classes]
    if missing:
        raise MeddapError(f"external evaluation needs the classes {missing} among {list(classes)}")
    labels = np.asarray(labels, dtype=object)
    probs = np.asarray(probabilities, dtype=np.float64)
    keep = np.isin(labels, EXTERNAL_CLASSES)
    if not keep.any():
        raise MeddapError("the external dataset holds no benign or malignant images")
    pair = probs[keep][:, [list(classes).index(c) for c in EXTERNAL_CLASSES]]
    total = pair.sum(axis=1, keepdims=True)
    binary = np.divide(pair, total, out=np.full_like(pair, 0.5), where=total > 0)
    scores = classification_metrics(labels[keep], binary, EXTERNAL_CLASSES)
    full = probs[keep].argmax(axis=1)
    normal = list(classes).index("normal") if "normal" in classes else -1
    return {
        **scores,
        "rule": EXTERNAL_RULE,
        "n_excluded": int((~keep).sum()),
        "normal_argmax_fraction": float(np.mean(full == normal)),
    }


def _encode(
    labels: Sequence[str], probabilities: np.ndarray, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices of `labels` and the probabilities as float64, both checked."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0 or probs.shape != (len(labels), len(classes)):
        raise MeddapError(
            f"metrics need one row of {len(classes)} probabilities per label, got shape "
            f"{probs.shape} for {len(labels)} labels"
        )
    index = {c: k for k, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels} - set(index))
    if unknown:
        raise MeddapError(f"labels {unknown} are not among the classes {list(classes)}")
    return np.array([index[label] for label in labels]), probs


def _specificity(truth: np.ndarray, pred: np.ndarray, order: list[int]) -> list[float]:
    """TN / (TN + FP) per class, 0 where a class has no negatives."""
    tn_fp = multilabel_confusion_matrix(truth, pred, labels=order)[:, 0, :]
    negatives = tn_fp.sum(axis=1)
    return [float(tn / n) if n else 0.0 for tn, n in zip(tn_fp[:, 0], negatives, strict=True)]


def _auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """One-vs-rest ROC AUC, None when `positive` is all True or all False."""
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, score))


def _macro(per_class: dict[str, dict]) -> dict[str, float | None]:
    """Unweighted means of each score over the classes that have one (None where none has)."""
    macro: dict[str, float | None] = {}
    for key in SCORES:
        defined = [scores[key] for scores in per_class.values() if scores[key] is not None]
        macro[key] = float(np.mean(defined)) if defined else None
    return macro
