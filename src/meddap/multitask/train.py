"""MTL's training job: one backbone and mode per fold, on the fold's images of all classes.

Normals are kept (their masks are empty), as the paper's joint model needs them. The loop is
`meddap.common.training`'s with `MultiTaskTask`; Adam; every mode trains on the same budget of
updates (`multitask.training`, oversampled or not); the kept update has the highest
λ · val Dice + (1 - λ) · val accuracy. The kept model predicts the test split
(`predictions.npz`); PR and the metrics are their own jobs. Initial weights and batch order
depend on (seed, fold, backbone) only, so the modes of a fold start from one network. Checkpoints at
every validation make a killed job resume.
"""

from __future__ import annotations

import logging

import torch

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.runtime import deterministic, resolve_device
from meddap.common.seeds import derive_seed
from meddap.common.settings import Multitask
from meddap.common.training import check_budget, fit
from meddap.common.weights import write_weights
from meddap.multitask.losses import MultiTaskLoss
from meddap.multitask.models import N_HEADS, MultiTaskNet
from meddap.multitask.modes import parse_mode
from meddap.multitask.predictions import Predictions
from meddap.multitask.tasks import MultiTaskTask, predict
from meddap.seg.data import Pairs, fold_rows, load_pairs
from meddap.seg.train import run_checkpoint

log = logging.getLogger(__name__)
SELECTION = "highest λ · val Dice + (1 - λ) · val accuracy; ties: lower val loss, then earlier"


def build_net(backbone: str, how: Multitask) -> MultiTaskNet:
    """The configured multi-task network (random weights)."""
    return MultiTaskNet(backbone, how.channels, how.head_width, how.head_hidden)


def fold_pairs(manifest: str, splits: str, fold: int, split: str, size: int) -> Pairs:
    """The images and masks of every class of one split of a fold."""
    return load_pairs(fold_rows(manifest, splits, fold, split, "all"), size)


def train_multitask(
    *,
    manifest: str,
    splits: str,
    weights: str,
    predictions: str,
    fit_record: str,
    fold: int,
    backbone: str,
    mode: str,
    multitask: Multitask,
    seed: int,
) -> None:
    """Job: train `backbone` in `mode` on fold `fold`; write weights, test predictions, the run."""
    how, parsed = multitask, parse_mode(mode)
    check_budget(how.training, "multitask.training")
    if not parsed.trained:
        raise MeddapError(f"mode {mode!r} combines single-task runs and trains no network")
    device = resolve_device(how.device, "multitask.device")
    train, val = (fold_pairs(manifest, splits, fold, s, how.image_size) for s in ("train", "val"))
    job_seed = derive_seed(seed, "multitask", fold, backbone)
    torch.manual_seed(job_seed)
    net = build_net(backbone, how).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=how.learning_rate)
    criterion = MultiTaskLoss(parsed.loss_weight, N_HEADS)
    task = MultiTaskTask(train, val, how.batch_size, criterion, parsed.oversample)
    log.info("%s %s: %d train, %d val images", backbone, mode, len(train), len(val))
    run = {"backbone": backbone, "mode": mode, "fold": fold, "seed": seed}
    checkpoint = run_checkpoint(weights, [manifest, splits], [train, val], how, **run)
    best = fit(net, optimizer, task, budget=how.training, seed=job_seed, checkpoint=checkpoint)
    net.load_state_dict(best.state)
    test = fold_pairs(manifest, splits, fold, "test", how.image_size)
    with deterministic(device):
        probabilities, _, masks = predict(net, test.images, how.batch_size)
    Predictions(test.ids, probabilities, probabilities.argmax(1), masks).save(predictions)
    meta = {"backbone": backbone, "mode": mode, "best_update": best.update}
    write_weights(best.state, meta | {"channels": how.channels}, weights)
    summary = {**run, "image_size": how.image_size, "lambda": parsed.loss_weight}
    summary |= {"oversampling": parsed.oversample, "n_train": len(train), "n_val": len(val)}
    summary |= {"selection": SELECTION, **best.record(how.training)}
    write_json(summary, fit_record)
    checkpoint.remove()
