"""Segmentation metrics on hand-checkable masks, and MTL's convention for empty masks."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from meddap.seg.metrics import image_scores
from meddap.seg.summary import METRICS, summarise


def _masks(*boxes: tuple[int, int, int, int] | None, size: int = 12) -> torch.Tensor:
    """Binary masks (N, 1, size, size), one per box (row0, row1, col0, col1) or None (empty)."""
    masks = torch.zeros(len(boxes), 1, size, size, dtype=torch.bool)
    for k, box in enumerate(boxes):
        if box is not None:
            masks[k, 0, box[0] : box[1], box[2] : box[3]] = True
    return masks


def test_overlap_and_distances_of_hand_checked_masks() -> None:
    predicted = _masks((2, 6, 2, 6), (2, 6, 2, 4), (4, 5, 2, 3))
    truth = _masks((2, 6, 2, 6), (2, 6, 2, 6), (4, 5, 5, 6))
    scores = image_scores(predicted, truth)
    same, half, apart = scores.to_dict("records")
    assert (same["dice"], same["iou"], same["hd95"], same["assd"]) == (1, 1, 0, 0)
    assert half["dice"] == pytest.approx(2 * 8 / (8 + 16))  # 8 of 16 truth pixels, nothing else
    assert half["iou"] == pytest.approx(8 / 16)
    assert (half["precision"], half["recall"]) == (pytest.approx(1), pytest.approx(0.5))
    assert half["hd95"] == pytest.approx(2)  # the truth's right edge is 2 px from the prediction
    # two single pixels 3 px apart: no overlap, every surface distance 3
    assert (apart["dice"], apart["iou"], apart["precision"], apart["recall"]) == (0, 0, 0, 0)
    assert apart["hd95"] == pytest.approx(3) and apart["assd"] == pytest.approx(3)
    assert list(scores.truth_pixels) == [16, 16, 1] and list(scores.predicted_pixels) == [16, 8, 1]


def test_empty_masks_follow_seed_004() -> None:
    scores = image_scores(_masks(None, (2, 4, 2, 4), None), _masks(None, None, (2, 4, 2, 4)))
    both, only_predicted, only_truth = scores.to_dict("records")
    assert [both[m] for m in ("dice", "iou", "precision", "recall")] == [1, 1, 1, 1]
    for row in (only_predicted, only_truth):
        assert [row[m] for m in ("dice", "iou", "precision", "recall")] == [0, 0, 0, 0]
    assert scores[["hd95", "assd"]].isna().all().all()  # undefined wherever a mask is empty


def test_summaries_average_images_and_classes_and_count_undefined() -> None:
    predicted = _masks(None, (2, 6, 2, 6), (2, 6, 2, 4))
    truth = _masks(None, (2, 6, 2, 6), (2, 6, 2, 6))
    scores = image_scores(predicted, truth).assign(label=["normal", "benign", "malignant"])
    summary = summarise(scores)
    assert set(METRICS) <= set(summary)
    assert summary["dice"]["normal"] == 1 and summary["dice"]["benign"] == 1
    assert summary["dice"]["mean"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert summary["hd95"]["normal"] is None  # no defined value: JSON null, not NaN
    assert summary["hd95"]["mean"] == pytest.approx(1.0)  # (0 + 2) / 2, the empty pair left out
    assert summary["undefined"] == {"hd95": 1, "assd": 1}
    assert summary["n_images"] == {"all": 3, "benign": 1, "malignant": 1, "normal": 1}
    assert not any(isinstance(v, float) and math.isnan(v) for v in summary["iou"].values())


def test_summary_of_one_class() -> None:
    scores = image_scores(_masks((0, 2, 0, 2)), _masks((0, 2, 0, 2))).assign(label="benign")
    assert summarise(pd.DataFrame(scores))["dice"] == {"mean": 1.0, "benign": 1.0}
