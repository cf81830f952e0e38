"""Segmenter training: a MONAI network per fold, model and training set, scored per image.

Training (`meddap.common.training`) uses Adam and Dice + cross-entropy (`dice_ce`, MONAI's
`DiceCELoss` on the sigmoid; `dice_focal`: `DiceFocalLoss`), over every head of a
deep-supervised model (`DeepSupervisionLoss`, weights 1, 1/2, 1/4, ... from the main head).
After every epoch the model segments the val split; the kept epoch has the highest mean val
Dice (ties: lower val loss, then the earlier epoch). The kept model then segments the test split
and each external dataset (zero-shot: never trained on). Per-epoch checkpoints make a killed job
resume (on CPU with the bytes of an uninterrupted run). The initial weights depend on
(seed, fold, model) only, so the training sets of a fold and model start from one network.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceFocalLoss
from monai.transforms import Compose
from safetensors.torch import save_file

from meddap.common.atomic import atomic_path, write_json, write_parquet
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.hashing import file_sha256
from meddap.common.runtime import deterministic, resolve_device, resolve_precision
from meddap.common.seeds import derive_seed
from meddap.common.settings import Segmentation
from meddap.common.training import Batch, Fit, Validation, fit, shuffled_batches
from meddap.seg.augment import augment, augmenter
from meddap.seg.data import MASK_THRESHOLD, Pairs, external_rows, fold_rows, load_pairs
from meddap.seg.metrics import image_scores, overlap_scores, summarise
from meddap.seg.models import build_segmenter, heads, predict_logits

log = logging.getLogger(__name__)
META_KEY = "meddap"
SELECTION = "highest mean val Dice; ties: lower val loss, then the earlier epoch"
LOSSES = {"dice_ce": DiceCELoss, "dice_focal": DiceFocalLoss}
Output = torch.Tensor | list[torch.Tensor]


@dataclass
class SegmenterTask:
    """The loss over all heads on (augmented) train pairs; val Dice, then val loss, ranks."""

    train: Pairs
    val: Pairs
    batch_size: int
    augment: Compose | None
    criterion: torch.nn.Module

    def batches(self, order: torch.Generator) -> Iterator[Batch]:
        """Shuffled batches; augmentation draws are seeded from `order`, one seed per batch."""
        for index in shuffled_batches(len(self.train), self.batch_size, order):
            images, masks = self.train.images[index], self.train.masks[index]
            if self.augment is not None:
                seed = int(torch.randint(2**31, (1,), generator=order))
                images, masks = augment(self.augment, images, masks, seed)
            yield Batch(images, masks)

    def loss(self, output: Output, targets: torch.Tensor) -> torch.Tensor:
        """The deep-supervision-weighted loss of every head (one head: the plain loss)."""
        return self.criterion(heads(output), targets)

    def validate(self, model: torch.nn.Module) -> Validation:
        """Mean val Dice (seed 004's empty-mask convention) and loss; val masks as outputs."""
        logits = predict_logits(model, self.val.images, self.batch_size)
        predicted = logits > 0
        dice = overlap_scores(predicted, self.val.masks)["dice"].mean()
        loss = self.criterion(logits, self.val.masks).item()
        return Validation({"val_dice": float(dice), "val_loss": loss}, predicted)

    def score_key(self, entry: dict[str, float]) -> tuple[float, float]:
        """Dice up, then loss down (the loop breaks ties by the earlier epoch)."""
        return entry["val_dice"], -entry["val_loss"]


def train_segmenter(
    *,
    manifest: str,
    splits: str,
    external: str | Sequence[str],
    weights: str,
    scores: str,
    metrics: str,
    fold: int,
    model: str,
    trainset: str,
    segmentation: Segmentation,
    seed: int,
) -> None:
    """Job: train `model` on `trainset` of fold `fold`; write weights, per-image scores, metrics."""
    how = segmentation
    device = resolve_device(how.device, "segmentation.device")
    precision = resolve_precision(how.mixed_precision, "segmentation.mixed_precision", device)
    rows = {s: fold_rows(manifest, splits, fold, s, how.classes) for s in ("train", "val", "test")}
    externals = external_rows([external] if isinstance(external, str) else external, how.classes)
    train, val = load_pairs(rows["train"], how.image_size), load_pairs(rows["val"], how.image_size)
    job_seed = derive_seed(seed, "segmenter", fold, model)
    torch.manual_seed(job_seed)
    net = build_segmenter(model, how.channels).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=how.learning_rate)
    criterion = DeepSupervisionLoss(LOSSES[how.loss](sigmoid=True))
    log.info("%s on %s: %d train, %d val images", model, trainset, len(train), len(val))
    run = {"model": model, "trainset": trainset, "fold": fold, "seed": seed}
    checkpoint = _checkpoint(weights, [manifest, splits], [train, val], how, **run)
    transform = augmenter(trainset, how.augment_probability)
    task = SegmenterTask(train, val, how.batch_size, transform, criterion)
    fitted = {"epochs": how.epochs, "seed": job_seed, "precision": precision}
    best = fit(net, optimizer, task, **fitted, checkpoint=checkpoint)
    net.load_state_dict(best.state)
    afterwards = {"test": rows["test"], **{f"external:{n}": t for n, t in externals.items()}}
    with deterministic(device):
        table = _score_all(net, {"val": (val, best.outputs)}, afterwards, how)
    _save_weights(best, weights, model, how)
    write_parquet(table, scores)
    summary = _summary(best, model, trainset, fold, how) | {"n_train": len(train)}
    write_json(summary | _sections(table), metrics)
    checkpoint.remove()


def _score_all(
    net: torch.nn.Module,
    predicted: dict[str, tuple[Pairs, torch.Tensor]],
    afterwards: dict[str, pd.DataFrame],
    how: Segmentation,
) -> pd.DataFrame:
    """Per-image scores of the `predicted` splits and of the kept model on `afterwards`."""
    for split, table in afterwards.items():
        pairs = load_pairs(table, how.image_size)
        predicted[split] = (pairs, predict_logits(net, pairs.images, how.batch_size) > 0)
    frames = [_scored(split, pairs, masks) for split, (pairs, masks) in predicted.items()]
    return pd.concat(frames, ignore_index=True)


def _scored(split: str, pairs: Pairs, predicted: torch.Tensor) -> pd.DataFrame:
    """id, split, label and the per-image metrics of one split's predicted masks."""
    keys = pd.DataFrame({"id": pairs.ids, "split": split, "label": pairs.labels})
    return pd.concat([keys, image_scores(predicted, pairs.masks.bool())], axis=1)


def _sections(table: pd.DataFrame) -> dict:
    """The val and test summaries, and one per external dataset under 'external'."""
    sections: dict = {"external": {}}
    for split, rows in table.groupby("split", sort=True):
        if split.startswith("external:"):
            sections["external"][split.removeprefix("external:")] = summarise(rows)
        else:
            sections[split] = summarise(rows)
    return sections


def _summary(best: Fit, model: str, trainset: str, fold: int, how: Segmentation) -> dict:
    """What metrics.json says about the run besides the scores."""
    return {
        "model": model,
        "trainset": trainset,
        "fold": fold,
        "classes": how.classes,
        "image_size": how.image_size,
        "units": f"pixels at {how.image_size} px",
        "mask_threshold": MASK_THRESHOLD,
        "best_epoch": best.epoch,
        "selection": SELECTION,
        "history": best.history,
    }


def _checkpoint(
    weights: str, tables: list[str], data: list[Pairs], how: Segmentation, **run: object
) -> Checkpoint:
    """checkpoint.pt beside `weights`, for this run, its settings, tables and loaded pixels."""
    pixels = hashlib.sha256()
    for pairs in data:
        pixels.update(pairs.images.numpy().tobytes())
        pixels.update(pairs.masks.numpy().tobytes())
    run_fingerprint = fingerprint(
        **run,
        settings=how.params(),
        inputs_sha256=[file_sha256(path) for path in tables],
        pixels_sha256=pixels.hexdigest(),
    )
    return Checkpoint(Path(weights).parent / "checkpoint.pt", run_fingerprint)


def _save_weights(best: Fit, path: str, model: str, how: Segmentation) -> None:
    """The kept state as safetensors with one JSON metadata entry."""
    meta = {"model": model, "channels": how.channels, "image_size": how.image_size}
    meta |= {"best_epoch": best.epoch, "classes": how.classes}
    state = {k: v.contiguous() for k, v in best.state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
