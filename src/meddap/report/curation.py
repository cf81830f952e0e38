"""The curation report of a dataset: what duplicate detection found and curation removed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from meddap.common.atomic import atomic_path
from meddap.common.images import open_gray
from meddap.common.labels import CLASSES
from meddap.common.settings import Similarity
from meddap.data.curation import member_groups, read_duplicates
from meddap.report.plotting import save_figure

SHOWN = 3  # closest accepted and closest rejected pairs drawn


def curation_report(
    *,
    manifest: str,
    duplicates: str,
    curated: str,
    findings: str,
    summary: str,
    figure: str,
    similarity: Similarity,
) -> None:
    """Job: summary markdown (counts, mask findings) and a figure (score histogram, pairs)."""
    images, pairs = pd.read_parquet(manifest), read_duplicates(duplicates)
    kept = pd.read_parquet(curated)
    text = summary_text(images, pairs, kept, similarity.threshold)
    with atomic_path(summary) as tmp:
        tmp.write_text(text + findings_text(pd.read_parquet(findings)))
    draw(images, pairs, similarity.threshold, figure)


def summary_text(
    images: pd.DataFrame, pairs: pd.DataFrame, kept: pd.DataFrame, threshold: float
) -> str:
    """Markdown: counts of pairs and groups, images removed per class and per group size."""
    groups = member_groups(pairs)
    size = groups.map(groups.value_counts())
    removed = images[~images["id"].isin(kept["id"])]
    by_class = removed["label"].value_counts().reindex(CLASSES, fill_value=0)
    by_size = removed["id"].map(size).fillna(0).astype(int).value_counts().sort_index()
    accepted = pairs[pairs["accepted"]]
    lines = [
        "# Curation report",
        "",
        f"- images: {len(images)}, kept: {len(kept)}, removed: {len(removed)}",
        f"- pairs scored: {len(pairs)}, accepted (aligned SSIM >= {threshold}, complete "
        f"linkage): {len(accepted)}, with different labels: {int((~accepted['same_label']).sum())}",
        f"- groups: {groups.nunique()}",
        "",
        "| class | images | removed |",
        "| --- | --- | --- |",
        *(f"| {c} | {int((images['label'] == c).sum())} | {int(by_class[c])} |" for c in CLASSES),
        "",
        "| group size | groups | images removed |",
        "| --- | --- | --- |",
        *(
            f"| {n} | {int((groups.value_counts() == n).sum())} | {int(by_size.get(n, 0))} |"
            for n in sorted(set(groups.value_counts()))
        ),
        "",
    ]
    return "\n".join(lines)


def findings_text(findings: pd.DataFrame) -> str:
    """Markdown: the images whose masks contradict their labels, found at ingest."""
    lines = ["", f"## Masks that contradict their labels: {len(findings)}", ""]
    if len(findings):
        lines += ["| image | label | finding | action |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {r.id} | {r.label} | {r.finding} | {r.action} |" for r in findings.itertuples()
        ]
        lines.append("")
    return "\n".join(lines)


def draw(images: pd.DataFrame, pairs: pd.DataFrame, threshold: float, figure: str) -> None:
    """Score histogram with the threshold, then the closest accepted and rejected pairs."""
    paths = images.set_index("id")["image_path"]
    accepted = pairs[pairs["accepted"]].sort_values(["score", "id_a", "id_b"]).head(SHOWN)
    rejected = pairs[~pairs["accepted"]].sort_values(["score", "id_a", "id_b"]).tail(SHOWN)
    shown = [("accepted", r) for r in accepted.itertuples()]
    shown += [("rejected", r) for r in rejected[::-1].itertuples()]
    fig, axes = plt.subplots(1 + len(shown), 2, figsize=(5, 2.2 * (1 + len(shown))), squeeze=False)
    hist = plt.subplot2grid((1 + len(shown), 2), (0, 0), colspan=2, fig=fig)
    for ax in axes[0]:
        ax.remove()
    bins = np.linspace(min(0.0, float(np.min(pairs["score"].to_numpy(), initial=0.0))), 1.0, 41)
    for name, part in (
        ("accepted", pairs[pairs["accepted"]]),
        ("rejected", pairs[~pairs["accepted"]]),
    ):
        hist.hist(part["score"], bins=bins, alpha=0.7, label=name)
    hist.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold}")
    hist.set_yscale("log")
    hist.set_xlabel("aligned-overlap SSIM", fontsize=8)
    hist.set_ylabel("pairs", fontsize=8)
    hist.legend(fontsize=7)
    for row, (name, pair) in enumerate(shown, start=1):
        for ax, id_ in zip(axes[row], (pair.id_a, pair.id_b), strict=True):
            with open_gray(paths[id_]) as gray:
                ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
            ax.set_title(id_, fontsize=7)
            ax.axis("off")
        axes[row][0].text(
            -0.05,
            0.5,
            f"{name}\n{pair.score:.3f}",
            transform=axes[row][0].transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    fig.tight_layout()
    save_figure(fig, figure)
