"""Paper figures drawn with matplotlib (written atomically as PNG)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from meddap.atomic import atomic_path

CLASSES = ("normal", "benign", "malignant")


def _pick(table: pd.DataFrame, label: str, n: int) -> list[str]:
    """The first `n` image paths of class `label` (tables are in a fixed order)."""
    return list(table[table.label == label].image_path[:n])


def _rows(manifest: str, splits: str, fold: int, synthetic: list[str]) -> dict[str, pd.DataFrame]:
    ids = pd.read_parquet(splits).query("fold == @fold and split == 'train'").id
    real = pd.read_parquet(manifest).set_index("id").loc[sorted(ids)].reset_index()
    rows = {"real": real}
    for path in synthetic:
        table = pd.read_parquet(path).sort_values("index")
        rows[str(table.adjective.iloc[0])] = table
    return rows


def sample_grid(
    *, manifest: str, splits: str, synthetic: list[str], figure: str, fold: int, per_class: int
) -> None:
    """Real train images and each adjective's synthetic images, `per_class` per class (Fig. 1b)."""
    rows = _rows(manifest, splits, fold, synthetic)
    ncols = per_class * len(CLASSES)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(ncols * 1.2, len(rows) * 1.3), squeeze=False
    )
    for r, (name, table) in enumerate(rows.items()):
        for c, label in enumerate(CLASSES):
            paths = _pick(table, label, per_class)
            for k in range(per_class):
                ax = axes[r][c * per_class + k]
                ax.axis("off")
                if k < len(paths):
                    ax.imshow(Image.open(paths[k]).convert("L"), cmap="gray", vmin=0, vmax=255)
                if r == 0 and k == 0:
                    ax.set_title(label, fontsize=8, loc="left")
        axes[r][0].text(
            -0.1, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8
        )
    fig.suptitle(f"fold {fold}: real vs synthetic", fontsize=9)
    with atomic_path(figure) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
