"""The curation report on the real BUSI sample: counts in markdown, a figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from meddap.data.curation import apply_policy, find_duplicates
from meddap.data.ingest import FINDING_COLUMNS
from meddap.report.curation import curation_report, linkage_text
from tests.data.test_curation import SIMILARITY, manifest  # noqa: F401 (fixture)


def test_report_counts_and_figure(tmp_path: Path, manifest: pd.DataFrame) -> None:  # noqa: F811
    duplicates = find_duplicates(manifest, SIMILARITY)
    paths = {n: tmp_path / f"{n}.parquet" for n in ("manifest", "duplicates", "curated")}
    manifest.to_parquet(paths["manifest"], index=False)
    duplicates.to_parquet(paths["duplicates"], index=False)
    apply_policy(manifest, duplicates, "drop_all").to_parquet(paths["curated"], index=False)
    paths["findings"] = tmp_path / "findings.parquet"
    finding = ["normal_9", "normal", "/x/normal (9).png", "lesion in the mask of a normal image"]
    pd.DataFrame([[*finding, "dropped"]], columns=FINDING_COLUMNS).to_parquet(paths["findings"])
    summary, figure = tmp_path / "curation.md", tmp_path / "curation.png"
    curation_report(
        **{n: str(p) for n, p in paths.items()},
        summary=str(summary),
        figure=str(figure),
        similarity=SIMILARITY,
    )
    text = summary.read_text()
    assert "images: 23, kept: 12, removed: 11" in text and "groups: 4" in text
    assert "| benign | 13 | 8 |" in text and "| malignant | 6 | 3 |" in text
    assert "| 4 | 1 | 4 |" in text and "| 2 | 2 | 4 |" in text
    assert (
        "accepted: 11, rejected by score: 92, rejected by masks: 0, rejected by linkage: 0" in text
    )
    assert "Refused by complete linkage" not in text
    assert "contradict their labels: 1" in text
    assert "| normal_9 | normal | lesion in the mask of a normal image | dropped |" in text
    assert Image.open(figure).size[0] > 300


def test_linkage_refusals_are_listed_per_image() -> None:
    """c scores 0.9 with a, but 0.5 with b of a's group: the report says so."""
    pairs = pd.DataFrame(
        {
            "id_a": ["a", "a", "b"],
            "id_b": ["b", "c", "c"],
            "score": [0.95, 0.9, 0.5],
            "accepted": [True, False, False],
            "verdict": ["accepted", "linkage", "below_threshold"],
            "group": pd.array([0, None, None], "Int64"),
        }
    )
    lines = linkage_text(pairs)
    assert "| c | 0.900 | a | group 0: rejected by score with b (0.500) |" in lines
    assert len([line for line in lines if line.startswith("| c ")]) == 1
    closer = pd.concat(
        [pairs, pairs.head(1).assign(id_a="c", id_b="d", group=1)], ignore_index=True
    )
    closer.loc[2, ["score", "verdict"]] = [0.85, "linkage"]  # c is linked to all of group 0
    assert "| c | 0.900 | a | group 0: linked to all, but in group 1 |" in linkage_text(closer)
