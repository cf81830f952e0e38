"""The one table writer: a frame as Parquet and CSV, with a captioned Markdown view."""

from __future__ import annotations

import pandas as pd

from meddap.common.atomic import atomic_path, write_parquet


def write_table(
    frame: pd.DataFrame,
    parquet: str,
    csv: str,
    markdown: str | None = None,
    caption: str = "",
    shown: pd.DataFrame | None = None,
) -> None:
    """`frame` as Parquet and CSV (no index); with `markdown`, the caption and the `shown` view
    (default: the frame) as a Markdown table. Each file is written atomically."""
    write_parquet(frame, parquet)
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    if markdown is not None:
        view = frame if shown is None else shown
        with atomic_path(markdown) as tmp:
            tmp.write_text(f"{caption}\n\n{markdown_table(view)}\n")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table of `frame` (no index).

    Floats show 4 significant digits and NaN as n/a; other missing cells are empty.
    """

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    columns = [_column_text(frame[name]) for name in frame.columns]
    body = [line(cells) for cells in zip(*columns, strict=True)]
    return "\n".join([line(list(map(str, frame.columns))), line(["---"] * frame.shape[1]), *body])


def _column_text(column: pd.Series) -> list[str]:
    if pd.api.types.is_float_dtype(column):
        return ["n/a" if pd.isna(v) else f"{v:.4g}" for v in column]
    return ["" if pd.isna(v) else str(v) for v in column]
