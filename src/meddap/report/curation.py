"""The curation report of a dataset: what duplicate detection found and curation removed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from meddap.common.atomic import atomic_path
from meddap.common.images import open_gray
from meddap.common.labels import CLASSES
from meddap.common.settings import CurationSearch
from meddap.data.curation import VERDICTS, member_groups, read_duplicates
from meddap.report.plotting import save_figure

SHOWN = 3  # closest pairs drawn of each verdict
VERDICT_NAMES = {
    "accepted": "accepted",
    "below_threshold": "rejected by score",
    "masks_disagree": "rejected by masks",
    "linkage": "rejected by linkage",
}


def curation_report(
    *,
    manifest: str,
    duplicates: str,
    curated: str,
    findings: str,
    summary: str,
    figure: str,
    similarity: CurationSearch,
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
    counts = pairs["verdict"].value_counts()
    lines = [
        "# Curation report",
        "",
        f"- images: {len(images)}, kept: {len(kept)}, removed: {len(removed)}",
        f"- pairs scored: {len(pairs)}, accepted (aligned SSIM >= {threshold}, complete "
        f"linkage): {len(accepted)}, with different labels: {int((~accepted['same_label']).sum())}",
        "- "
        + ", ".join(f"{VERDICT_NAMES[v]}: {int(counts.get(v, 0))}" for v in VERDICTS)
        + " (masks: lesion IoU too low for a near-threshold score; linkage: scores at least "
        "the threshold but not with every member of a group)",
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
        *linkage_text(pairs),
    ]
    return "\n".join(lines)


def linkage_text(pairs: pd.DataFrame) -> list[str]:
    """Markdown lines: each image that linkage kept out of a group it scores high with, why."""
    refused = pairs[pairs["verdict"] == "linkage"]
    if refused.empty:
        return []
    groups = member_groups(pairs)
    lines = ["## Refused by complete linkage", "", "| image | scores | with | but |"]
    lines.append("| --- | --- | --- | --- |")
    for row in refused.sort_values(["id_a", "id_b"]).itertuples():
        for image, other in ((row.id_a, row.id_b), (row.id_b, row.id_a)):
            if groups.get(other) is not None and groups.get(image) != groups.get(other):
                why = _weakest(pairs, groups, image, other)
                lines.append(f"| {image} | {row.score:.3f} | {other} | {why} |")
    return [*lines, ""]


def _weakest(pairs: pd.DataFrame, groups: pd.Series, image: str, other: str) -> str:
    """Why `image` stays out of `other`'s group (`groups`: member_groups): its lowest-scoring
    pair with a member that is not linked to it, or else the closer group it joined."""
    members = set(groups.index[groups == groups[other]])
    with_members = pairs[
        ((pairs["id_a"] == image) & pairs["id_b"].isin(members))
        | ((pairs["id_b"] == image) & pairs["id_a"].isin(members))
    ]
    unlinked = with_members[with_members["verdict"] != "linkage"].sort_values("score")
    if unlinked.empty:
        return f"group {groups[other]}: linked to all, but in group {groups[image]}"
    worst = unlinked.iloc[0]
    partner = worst["id_b"] if worst["id_a"] == image else worst["id_a"]
    return (
        f"group {groups[other]}: {VERDICT_NAMES[worst['verdict']]} with {partner} "
        f"({worst['score']:.3f})"
    )


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
    """Score histogram with the threshold, then the closest pairs of each verdict: the lowest
    accepted, and the highest rejected by score, by masks and by linkage (rows of their own)."""
    paths = images.set_index("id")["image_path"]
    ordered = pairs.sort_values(["score", "id_a", "id_b"])
    shown = []
    for verdict in VERDICTS:
        part = ordered[ordered["verdict"] == verdict]
        closest = part.head(SHOWN) if verdict == "accepted" else part.tail(SHOWN)[::-1]
        shown += [(VERDICT_NAMES[verdict], r) for r in closest.itertuples()]
    fig, axes = plt.subplots(1 + len(shown), 2, figsize=(5, 2.2 * (1 + len(shown))), squeeze=False)
    hist = plt.subplot2grid((1 + len(shown), 2), (0, 0), colspan=2, fig=fig)
    for ax in axes[0]:
        ax.remove()
    bins = np.linspace(min(0.0, float(np.min(pairs["score"].to_numpy(), initial=0.0))), 1.0, 41)
    for verdict in VERDICTS:
        part = pairs[pairs["verdict"] == verdict]
        if len(part):
            hist.hist(part["score"], bins=bins, alpha=0.7, label=VERDICT_NAMES[verdict])
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
