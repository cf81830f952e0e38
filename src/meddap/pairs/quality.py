"""Quality of a mask-conditioned pair set: image statistics and mask fidelity.

The image statistics are the classifier sets' (`meddap.synth.quality.set_quality`: Inception
FID/KID when the weights are given, the in-domain Fréchet distance and KID in the real-only
classifier's features, MS-SSIM diversity), against the fold's train lesion images. Mask
fidelity is the Dice between each synthetic image's conditioning mask and the mask that the
fold's real-only segmenter predicts on that image (`meddap.seg.metrics`, empty masks by
MTL's rule): a generator whose lesions ignore their masks scores near 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.runtime import deterministic, resolve_device
from meddap.common.settings import Quality, Segmentation
from meddap.pairs.finetune import train_lesions
from meddap.seg.data import load_pairs
from meddap.seg.metrics import overlap_scores
from meddap.seg.models import load_segmenter, predict_logits
from meddap.synth.quality import set_quality


def mask_fidelity(
    pairs: pd.DataFrame, segmenter: str, model: str, how: Segmentation
) -> dict[str, object]:
    """Mean, std, median and per-class mean Dice of the segmenter's masks vs the pairs' masks."""
    data = load_pairs(pairs, how.image_size)
    net = load_segmenter(segmenter, model, how).to(
        resolve_device(how.device, "segmentation.device")
    )
    with deterministic(next(net.parameters()).device):
        predicted = predict_logits(net, data.images, how.batch_size) > 0
    dice = overlap_scores(predicted, data.masks.bool())["dice"]
    labels = np.asarray(data.labels)
    return {
        "mean": float(dice.mean()),
        "std": float(dice.std(ddof=1)) if len(dice) > 1 else 0.0,
        "median": float(np.median(dice)),
        "per_class": {c: float(dice[labels == c].mean()) for c in sorted(set(labels))},
        "n": len(dice),
        "segmenter": {"model": model, "trainset": "real", "sha256": file_sha256(segmenter)},
        "image_size": how.image_size,
    }


def pairs_quality(
    *,
    manifest: str,
    splits: str,
    synth_manifest: str,
    segmenter: str,
    real_model: str,
    record: str,
    fold: int,
    fidelity_model: str,
    segmentation: Segmentation,
    quality: Quality,
    seed: int,
) -> None:
    """Job: the quality JSON of one fold's pair set, with its `mask_fidelity` entry."""
    pairs = pd.read_parquet(synth_manifest)
    if set(pairs["fold"]) != {fold}:
        raise MeddapError(f"{synth_manifest} holds folds {sorted(set(pairs['fold']))}, not {fold}")
    real = [str(p) for p in train_lesions(manifest, splits, fold)["image_path"]]
    fake = sorted(str(p) for p in pairs["image_path"])
    result = set_quality(real, fake, real_model, fold, quality, seed)
    result["reference"] = "the fold's train lesion images"
    result["mask_fidelity"] = mask_fidelity(pairs, segmenter, fidelity_model, segmentation)
    result["setting"] = str(pairs["setting"].iloc[0])
    write_json(result, record)
