"""What every figure shares: saving a matplotlib figure atomically, without volatile metadata."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from meddap.common.atomic import atomic_path


def save_figure(fig: Figure, path: str) -> None:
    """Write `fig` as PNG at 100 dpi to `path` (atomically; no software tag, so bytes repeat)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
