"""The curation report on the real BUSI sample: counts in markdown, a figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from meddap.data.curation import apply_policy, find_duplicates
from meddap.data.ingest import FINDING_COLUMNS
from meddap.report.curation import curation_report
from tests.test_curation import SIMILARITY, manifest  # noqa: F401 (fixture)


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
    assert "contradict their labels: 1" in text
    assert "| normal_9 | normal | lesion in the mask of a normal image | dropped |" in text
    assert Image.open(figure).size[0] > 300
