"""Classification metrics against hand-worked confusion matrices and scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

from meddap.cls.metrics import EXTERNAL_RULE, classification_metrics, external_metrics
from meddap.common.errors import MeddapError

CLASSES = ("normal", "benign", "malignant")


def _confident(predicted: list[int], n_classes: int = 3) -> np.ndarray:
    """Probabilities 0.6 on the predicted class, the rest shared equally."""
    probs = np.full((len(predicted), n_classes), 0.4 / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = 0.6
    return probs


def test_hand_worked_confusion_matrix() -> None:
    labels = ["normal"] * 2 + ["benign"] * 3 + ["malignant"] * 3
    predicted = [0, 1, 1, 1, 2, 2, 2, 0]  # N->N N->B | B->B B->B B->M | M->M M->M M->N
    result = classification_metrics(labels, _confident(predicted), CLASSES)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]
    assert result["accuracy"] == pytest.approx(5 / 8)
    per = result["per_class"]
    assert [per[c]["sensitivity"] for c in CLASSES] == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert [per[c]["specificity"] for c in CLASSES] == pytest.approx([5 / 6, 4 / 5, 4 / 5])
    assert [per[c]["precision"] for c in CLASSES] == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert [per[c]["f1"] for c in CLASSES] == pytest.approx([1 / 2, 2 / 3, 2 / 3])
    assert [per[c]["support"] for c in CLASSES] == [2, 3, 3]
    assert result["macro"]["sensitivity"] == pytest.approx(11 / 18)
    assert result["macro"]["specificity"] == pytest.approx((5 / 6 + 8 / 5) / 3)
    assert result["n"] == 8 and result["classes"] == list(CLASSES)


def test_perfect_and_inverted_auc() -> None:
    labels = ["benign", "benign", "malignant", "malignant"]
    ranked = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    perfect = classification_metrics(labels, ranked, ("benign", "malignant"))
    assert perfect["per_class"]["malignant"]["auc"] == 1.0
    assert perfect["macro"]["auc"] == 1.0
    inverted = classification_metrics(labels, ranked[:, ::-1], ("benign", "malignant"))
    assert inverted["per_class"]["malignant"]["auc"] == 0.0
    assert inverted["accuracy"] == 0.0


def test_agrees_with_scikit_learn_on_random_predictions() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, size=200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[truth]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    result = classification_metrics([CLASSES[k] for k in truth], probs, CLASSES)
    precision, recall, f1, _ = precision_recall_fscore_support(truth, pred, average="macro")
    assert result["macro"]["precision"] == pytest.approx(precision)
    assert result["macro"]["sensitivity"] == pytest.approx(recall)
    assert result["macro"]["f1"] == pytest.approx(f1)
    assert result["macro"]["auc"] == pytest.approx(roc_auc_score(truth, probs, multi_class="ovr"))
    for k, name in enumerate(CLASSES):
        specificity = recall_score(truth != k, pred != k)
        assert result["per_class"][name]["specificity"] == pytest.approx(specificity)
    assert result["accuracy"] == pytest.approx(np.mean(pred == truth))


def test_absent_class_is_null_and_left_out_of_the_averages() -> None:
    labels = ["benign", "malignant", "benign", "malignant"]
    predicted = [0, 2, 2, 2]  # B->N M->M B->M M->M: normal predicted once but never present
    result = classification_metrics(labels, _confident(predicted), CLASSES)
    normal = result["per_class"]["normal"]
    scores = ("sensitivity", "specificity", "precision", "f1", "auc")
    assert normal == {**dict.fromkeys(scores), "support": 0}
    truth, present = [CLASSES.index(c) for c in labels], [1, 2]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=present, average="macro", zero_division=0
    )
    assert result["macro"]["sensitivity"] == pytest.approx(recall) == pytest.approx(1 / 2)
    assert result["macro"]["precision"] == pytest.approx(precision)
    assert result["macro"]["f1"] == pytest.approx(f1)
    assert result["macro"]["specificity"] == pytest.approx((1 + 1 / 2) / 2)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = balanced_accuracy_score(truth, predicted)
    assert result["balanced_accuracy"] == pytest.approx(balanced) == result["macro"]["sensitivity"]
    defined = [result["per_class"][c]["auc"] for c in ("benign", "malignant")]
    assert result["macro"]["auc"] == pytest.approx(np.mean(defined))
    json.dumps(result, allow_nan=False)


def test_bad_input_is_refused() -> None:
    with pytest.raises(MeddapError, match="not among the classes"):
        classification_metrics(["benign", "cyst"], _confident([1, 1]), CLASSES)
    with pytest.raises(MeddapError, match="one row of 3 probabilities per label"):
        classification_metrics(["benign"], _confident([1, 1]), CLASSES)
    with pytest.raises(MeddapError, match="one row"):
        classification_metrics([], np.empty((0, 3)), CLASSES)


def test_external_rule_drops_normal_images_and_ignores_normal_probability() -> None:
    labels = ["normal", "benign", "benign", "malignant", "malignant"]
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # normal image: left out
            [0.7, 0.2, 0.1],  # argmax normal; benign > malignant -> benign (right)
            [0.1, 0.6, 0.3],  # benign (right)
            [0.5, 0.3, 0.2],  # argmax normal; benign > malignant -> benign (wrong)
            [0.1, 0.2, 0.7],  # malignant (right)
        ]
    )
    result = external_metrics(labels, probs, CLASSES)
    assert result["rule"] == EXTERNAL_RULE and "normal" in result["rule"]
    assert result["classes"] == ["benign", "malignant"]
    assert result["n"] == 4 and result["n_excluded"] == 1
    assert result["confusion_matrix"] == [[2, 0], [1, 1]]
    assert result["accuracy"] == pytest.approx(3 / 4)
    assert result["normal_argmax_fraction"] == pytest.approx(2 / 4)
    malignant_share = np.array([1 / 3, 1 / 3, 0.4, 7 / 9])
    expected_auc = roc_auc_score([0, 0, 1, 1], malignant_share)
    assert result["per_class"]["malignant"]["auc"] == pytest.approx(expected_auc)


def test_external_needs_benign_and_malignant() -> None:
    with pytest.raises(MeddapError, match="no benign or malignant images"):
        external_metrics(["normal", "normal"], _confident([0, 1]), CLASSES)
    with pytest.raises(MeddapError, match="needs the classes"):
        external_metrics(["benign"], np.array([[1.0, 0.0]]), ("normal", "benign"))
