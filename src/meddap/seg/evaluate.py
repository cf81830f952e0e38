"""Scoring trained segmenters: zero-shot on external datasets, and the run's metrics.json.

`score_segmenter` segments every image of an external dataset (never trained on) with a fold's
kept model; `segmenter_metrics` gathers a run's val and test scores (from training), its
external scores and its fit record into metrics.json, with one summary per split
(`meddap.seg.metrics.summarise`).
"""

from __future__ import annotations

import pandas as pd
import torch

from meddap.common.atomic import read_json, write_json, write_parquet
from meddap.common.errors import MeddapError
from meddap.common.runtime import deterministic, resolve_device
from meddap.common.settings import Segmentation
from meddap.seg.data import Pairs, external_rows, load_pairs
from meddap.seg.metrics import image_scores, summarise
from meddap.seg.models import load_segmenter, predict_logits


def scored(split: str, pairs: Pairs, predicted: torch.Tensor) -> pd.DataFrame:
    """id, split, label and the per-image metrics of one split's predicted masks."""
    keys = pd.DataFrame({"id": pairs.ids, "split": split, "label": pairs.labels})
    return pd.concat([keys, image_scores(predicted, pairs.masks.bool())], axis=1)


def score_segmenter(
    *, weights: str, manifest: str, scores: str, model: str, segmentation: Segmentation
) -> None:
    """Job: per-image scores of the segmenter `weights` on the external dataset `manifest`."""
    how = segmentation
    device = resolve_device(how.device, "segmentation.device")
    ((name, rows),) = external_rows([manifest], how.classes).items()
    pairs = load_pairs(rows, how.image_size)
    net = load_segmenter(weights, model, how).to(device)
    with deterministic(device):
        predicted = predict_logits(net, pairs.images, how.batch_size) > 0
    write_parquet(scored(f"external:{name}", pairs, predicted), scores)


def segmenter_metrics(*, fit_record: str, scores: str, external: list[str], metrics: str) -> None:
    """Job: metrics.json of a run: its fit record, val and test summaries, one per external set."""
    table = pd.read_parquet(scores)
    sections = {split: summarise(rows) for split, rows in table.groupby("split", sort=True)}
    if set(sections) != {"val", "test"}:
        raise MeddapError(f"{scores} must hold the val and test splits, found {sorted(sections)}")
    sections["external"] = {}
    for path in external:
        rows = pd.read_parquet(path)
        names = rows["split"].unique()
        if len(names) != 1 or not names[0].startswith("external:"):
            raise MeddapError(f"{path} must hold the scores of one external dataset")
        sections["external"][names[0].removeprefix("external:")] = summarise(rows)
    write_json(read_json(fit_record) | sections, metrics)
