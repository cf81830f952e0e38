"""Segmenter training: a MONAI network per fold, model and training set, scored per image.

The loop is `meddap.common.training`'s with a task of `meddap.seg.tasks` (Adam; the loss of the
model's kind), on the same budget of updates for every training set (`segmentation.training`). At
every validation the model segments the val split; the kept update has the highest mean val Dice
(ties: lower val loss, then the earlier update). The kept model then segments the test split;
external datasets are scored by their own jobs (`meddap.seg.evaluate`), so adding one trains
nothing. Checkpoints at every validation make a killed job resume (on CPU with the bytes of an
uninterrupted run). The initial weights and the batch order depend on (seed, fold, network) only,
so the training sets of a fold and model, and the dsunet ablation names, start from one network and
see the same batches. A patch-mixed set (`-mix{λ}p{p}`) trains on its synthetic pairs with cells of
their real parents mixed in afresh every batch (`meddap.seg.augment.RandPatchMixd`), the loss the
usual one against the shared mask; fit.json records the mixing.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd
import torch

from meddap.common.atomic import write_json, write_parquet
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.hashing import file_sha256
from meddap.common.runtime import deterministic, resolve_device, resolve_precision
from meddap.common.seeds import derive_seed
from meddap.common.settings import Section, Segmentation
from meddap.common.training import Fit, check_budget, fit
from meddap.common.weights import write_weights
from meddap.seg.augment import augmenter, with_parents
from meddap.seg.data import MASK_THRESHOLD, Pairs, concat_pairs, fold_rows, load_pairs
from meddap.seg.evaluate import scored
from meddap.seg.models import build_segmenter, predict_logits
from meddap.seg.registry import network_of
from meddap.seg.tasks import build_task
from meddap.trainsets import SEGMENTER, TrainingSet, parse

log = logging.getLogger(__name__)
SELECTION = "highest mean val Dice; ties: lower val loss, then the earlier update"


def train_segmenter(
    *,
    manifest: str,
    splits: str,
    weights: str,
    scores: str,
    fit_record: str,
    fold: int,
    model: str,
    trainset: str,
    segmentation: Segmentation,
    seed: int,
    synthetic: str | list[str] = (),
) -> None:
    """Job: train `model` on `trainset` of fold `fold`; write weights, val/test scores, the run.

    `synthetic`: the pool manifest of a `{setting}-{r}to{s}` training set, else empty.
    """
    how = segmentation
    check_budget(how.training, "segmentation.training")
    device = resolve_device(how.device, "segmentation.device")
    precision = resolve_precision(how.mixed_precision, "segmentation.mixed_precision", device)
    rows = {s: fold_rows(manifest, splits, fold, s, how.classes) for s in ("train", "val", "test")}
    train, val = load_pairs(rows["train"], how.image_size), load_pairs(rows["val"], how.image_size)
    wanted = parse(trainset)  # the one parse of the name in this job
    train, n_real = _with_synthetic(train, synthetic, fold, wanted, how.image_size, rows["train"])
    mixing = _mixing(wanted)
    if mixing is not None:
        train = with_parents(train)  # the parents ride along as a second image channel
    job_seed = derive_seed(seed, "segmenter", fold, network_of(model))
    torch.manual_seed(job_seed)
    net = build_segmenter(model, how.channels).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=how.learning_rate)
    log.info("%s on %s: %d train, %d val images", model, trainset, len(train), len(val))
    run = {"model": model, "trainset": trainset, "fold": fold, "seed": seed}
    tables = [manifest, splits, *([synthetic] if isinstance(synthetic, str) else synthetic)]
    checkpoint = run_checkpoint(weights, tables, [train, val], how, **run)
    transform = augmenter(wanted, how.augment_probability)
    task = build_task(model, train, val, how, transform, device)
    fitted = {"budget": how.training, "seed": job_seed, "precision": precision}
    best = fit(net, optimizer, task, **fitted, checkpoint=checkpoint)
    net.load_state_dict(best.state)
    test = load_pairs(rows["test"], how.image_size)
    with deterministic(device):
        predicted = predict_logits(net, test.images, how.batch_size) > 0
    table = pd.concat([scored("val", val, best.outputs), scored("test", test, predicted)])
    _save_weights(best, weights, model, how)
    write_parquet(table.reset_index(drop=True), scores)
    counts = {"n_train": len(train), "n_real": n_real, "n_synthetic": len(train) - n_real}
    summary = _summary(best, model, trainset, fold, how) | counts | {"mixing": mixing}
    write_json(summary, fit_record)
    checkpoint.remove()


def _with_synthetic(
    real: Pairs,
    synthetic: str | list[str],
    fold: int,
    wanted: TrainingSet,
    size: int,
    train_rows: pd.DataFrame,
) -> tuple[Pairs, int]:
    """The training pairs of `wanted` (real, real + synthetic, or synthetic only); n real.

    A mixed set's synthetic pairs carry their parents' pixels, found in `train_rows`.
    """
    manifests = [synthetic] if isinstance(synthetic, str) else list(synthetic)
    rows = wanted.added_rows(manifests, fold, train_rows, SEGMENTER)
    if rows is None:
        return real, len(real)
    pairs = load_pairs(rows, size)
    return (concat_pairs([real, pairs]), len(real)) if wanted.includes_real else (pairs, 0)


def _mixing(wanted: TrainingSet) -> dict | None:
    """fit.json's record of a patch-mixed set's mixing (None for the other sets)."""
    if wanted.mixing is None:
        return None
    mix_lambda, patches = wanted.mixing
    return {
        "lambda": mix_lambda,
        "patches": patches,
        "applies_to": "synthetic pairs, each with its real parent's centre crop (shared mask)",
        "draws": "a p x p grid of cells, each the parent's with probability lambda, every batch",
        "loss": "the usual segmentation loss of the mixed image against the shared mask",
    }


def _summary(best: Fit, model: str, trainset: str, fold: int, how: Segmentation) -> dict:
    """What a run was: its keys, settings, budget, kept update and history (fit.json)."""
    return {
        "model": model,
        "trainset": trainset,
        "fold": fold,
        "classes": how.classes,
        "image_size": how.image_size,
        "units": f"pixels at {how.image_size} px",
        "mask_threshold": MASK_THRESHOLD,
        "selection": SELECTION,
        **best.record(how.training),
    }


def run_checkpoint(
    weights: str, tables: list[str], data: list[Pairs], how: Section, **run: object
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
    meta |= {"best_update": best.update, "classes": how.classes}
    write_weights(best.state, meta, path)
