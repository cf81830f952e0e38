"""The segmentation figure: test images with truth and predicted lesion contours per model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from meddap.common.errors import MeddapError
from meddap.common.settings import Segmentation
from meddap.report.plotting import save_figure
from meddap.seg.data import Pairs, fold_rows, load_pairs
from meddap.seg.metrics import overlap_scores
from meddap.seg.models import load_segmenter, predict_logits

TRUTH, PREDICTED = "lime", "red"


def _pick(rows: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The first `per_class` rows (by id) of each class of the test split."""
    return rows.groupby("label", sort=True).head(per_class).sort_values(["label", "id"])


def contour_figure(
    *,
    weights: list[str],
    manifest: str,
    splits: str,
    figure: str,
    models: list[str],
    trainset: str,
    fold: int,
    per_class: int,
    segmentation: Segmentation,
) -> None:
    """Job: rows of test images of fold `fold`, a column per model with both contours and Dice."""
    if len(weights) != len(models):
        raise MeddapError(f"the contour figure needs one weights file per model {models}")
    how = segmentation
    rows = _pick(fold_rows(manifest, splits, fold, "test", how.classes), per_class)
    pairs = load_pairs(rows, how.image_size)
    predicted = {
        model: predict_logits(load_segmenter(path, model, how), pairs.images, how.batch_size) > 0
        for model, path in zip(models, weights, strict=True)
    }
    width = max(3.2, 1.6 * len(models))  # room for the title above a single column
    fig, axes = plt.subplots(
        len(pairs), len(models), figsize=(width, 1.6 * len(pairs)), squeeze=False
    )
    for column, (model, masks) in enumerate(predicted.items()):
        dice = overlap_scores(masks, pairs.masks.bool())["dice"]
        for row in range(len(pairs)):
            _panel(axes[row][column], pairs, row, masks[row, 0], float(dice[row]))
        axes[0][column].set_title(model, fontsize=8)
    fig.suptitle(
        f"fold {fold} test images at {how.image_size} px, {trainset} training set\n"
        f"truth ({TRUTH}) vs prediction ({PREDICTED})",
        fontsize=7,
    )
    fig.tight_layout()
    save_figure(fig, figure)


def _panel(ax: plt.Axes, pairs: Pairs, row: int, mask: torch.Tensor, dice: float) -> None:
    """One image with its truth and predicted contours, labelled with its class and Dice."""
    ax.imshow(pairs.images[row, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    for outline, colour in ((pairs.masks[row, 0].numpy(), TRUTH), (mask.numpy(), PREDICTED)):
        if outline.any():
            ax.contour(outline.astype(np.float32), levels=[0.5], colors=colour, linewidths=0.8)
    ax.text(1, 1, f"{pairs.labels[row]} Dice {dice:.2f}", color="yellow", fontsize=6, va="top")
    ax.axis("off")
