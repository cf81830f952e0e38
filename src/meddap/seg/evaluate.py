"""Scoring trained segmenters: per image of a split, and zero-shot on external datasets.

`score_segmenter` segments every image of an external dataset (never trained on) with a fold's
kept model; `meddap.seg.summary.segmenter_metrics` gathers those scores into metrics.json.
"""

from __future__ import annotations

import pandas as pd
import torch

from meddap.common.atomic import write_parquet
from meddap.common.runtime import deterministic, resolve_device
from meddap.common.settings import Segmentation
from meddap.seg.data import Pairs, external_rows, load_pairs
from meddap.seg.metrics import image_scores
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
