"""The clinical-prior figure: synthetic pairs per class and size bin, mask contour on the image."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from meddap.common.errors import MeddapError
from meddap.common.images import load_gray
from meddap.common.labels import LESION_CLASSES
from meddap.pairs.clinical import SIZES
from meddap.report.plotting import save_figure


def clinical_figure(*, synth_manifest: str, figure: str, per_cell: int) -> None:
    """Job: a row per class, `per_cell` columns per size bin of a clinical-mask pool's pairs."""
    pool = pd.read_parquet(synth_manifest)
    if set(pool["mask_source"]) != {"clinical"}:
        raise MeddapError(f"{synth_manifest} is not a pool of clinical-prior masks")
    fig, axes = plt.subplots(
        len(LESION_CLASSES),
        len(SIZES) * per_cell,
        figsize=(1.4 * len(SIZES) * per_cell, 1.6 * len(LESION_CLASSES)),
        squeeze=False,
    )
    for row, label in enumerate(LESION_CLASSES):
        for s, size in enumerate(SIZES):
            picked = pool[(pool["label"] == label) & (pool["size"] == size)].head(per_cell)
            for k in range(per_cell):
                ax = axes[row, s * per_cell + k]
                ax.axis("off")
                if k < len(picked):
                    _panel(ax, picked.iloc[k])
                if row == 0 and k == 0:
                    ax.set_title(size, fontsize=8, loc="left")
        axes[row, 0].text(
            -0.1,
            0.5,
            label,
            transform=axes[row, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=8,
        )
    fig.suptitle("Clinical-prior masks (green) on their synthetic images", fontsize=9)
    fig.tight_layout()
    save_figure(fig, figure)


def _panel(ax: plt.Axes, pair: pd.Series) -> None:
    """One synthetic image with its conditioning mask's outline."""
    image = load_gray([pair.image_path], 64)[0]
    mask = load_gray([pair.mask_path], 64)[0] > 127
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.contour(mask.astype(np.float32), levels=[0.5], colors="lime", linewidths=0.8)
