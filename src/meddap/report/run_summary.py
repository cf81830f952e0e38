"""The run's summary (`results/default_run.md`): its tables, class fidelity and job times.

Made from the run's own outputs, so a README that quotes it cannot drift from the results:
every table's Markdown verbatim (each shows the training compute of its rows), the real-only
classifiers' accuracy on each synthetic set (Fig. 1a's data), and the jobs' times from the
provenance ledger (their own work, start to end, per rule; the wall time of the run is the
span from the first start to the last end when it ran in one go).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from meddap.common.atomic import atomic_path, read_json
from meddap.common.errors import MeddapError
from meddap.common.tables import markdown_table

HEADER = (
    "# What this run shows\n\n"
    "Made by the `run_summary` rule from this run's outputs (dataset `{dataset}`). Numbers are "
    "byte-identical on a rerun on one machine; floating-point results differ between CPUs, so "
    "another machine prints other numbers.\n"
)


def run_summary(
    *, tables: list[str], fidelity: list[str], ledger: str, summary: str, dataset: str
) -> None:
    """Job: write `summary` from the tables' Markdown, the Fig. 1a JSONs and the ledger."""
    parts = [HEADER.format(dataset=dataset), "## Tables\n"]
    for path in tables:
        parts.append(f"### `{path}`\n\n{Path(path).read_text().strip()}\n")
    if fidelity:
        parts.append(f"## Class fidelity (Fig. 1a)\n\n{_fidelity(fidelity)}\n")
    parts.append(f"## Job times\n\n{_times(ledger)}\n")
    with atomic_path(summary) as tmp:
        tmp.write_text("\n".join(parts))


def _fidelity(paths: list[str]) -> str:
    """Per fold, model, rank and adjective: the real-only classifier's accuracy on the set."""
    rows = []
    for path in paths:
        record = read_json(path)
        try:
            keys = {k: record[k] for k in ("fold", "model", "rank", "adjective")}
            rows.append({**keys, "accuracy %": 100 * record["accuracy"]})
        except (KeyError, TypeError) as err:
            raise MeddapError(f"{path} lacks the key {err} of a Fig. 1a result") from None
    frame = pd.DataFrame(rows).sort_values(["model", "fold", "rank", "adjective"])
    caption = (
        "The real-only classifier of each fold on each synthetic set of the fold's ranks: the "
        "share of images it gives the prompted class (chance is 33 %).\n\n"
    )
    return caption + markdown_table(frame.round(2))


def _times(ledger: str) -> str:
    """Jobs and seconds of own work per rule, their sum, and the span of the run."""
    jobs = pd.read_parquet(ledger, columns=["rule", "started", "ended", "seconds"])
    if jobs.empty:
        raise MeddapError(f"{ledger} holds no job")
    per_rule = jobs.groupby("rule")["seconds"].agg(jobs="count", seconds="sum")
    per_rule = per_rule.sort_values("seconds", ascending=False).reset_index()
    started, ended = pd.to_datetime(jobs.started), pd.to_datetime(jobs.ended)
    span = (ended.max() - started.min()).total_seconds()
    lines = (
        f"{len(jobs)} jobs; their own work sums to {jobs.seconds.sum() / 60:.1f} min; first start "
        f"to last end {span / 60:.1f} min (the run's wall time when it ran in one go, without "
        "Snakemake's planning before the first job).\n\n"
    )
    return lines + markdown_table(per_rule.round(1))
