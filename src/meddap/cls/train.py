"""Downstream classifiers: a torchvision CNN trained on a fold's real train split (+ synthetic).

Images are read once as grayscale, resized to `image_size`, replicated to 3 channels and
normalised with the ImageNet mean and std. Training (`meddap.common.training`) uses Adam and
cross-entropy with optional on-the-fly flips and rotations and optional mixed precision. Every
training set trains on the same budget of updates (`classifier.training`), with class-balanced
batches or loss (`classifier.balance`, `meddap.cls.balance`). At every validation the model
predicts the val split; the kept update has the highest val accuracy (ties: lower val
cross-entropy, then the earlier update). Test and external images are read and predicted once,
after training. After every validation the job saves its state in checkpoint.pt beside the
weights; a rerun of the same job continues from there (on CPU with the bytes of an uninterrupted
run), and the file is deleted once all outputs are written.
The initial weights depend on (seed, fold, model) only, so the trainsets of a fold and model
start from the same network and differ only by their data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss
from torchvision.transforms import v2

from meddap.cls.balance import check_balance, class_weights, pass_indices
from meddap.cls.metrics import EXTERNAL_CLASSES, classification_metrics, external_metrics
from meddap.cls.models import build_model, imagenet_checkpoint, normalise, predict
from meddap.common.atomic import write_json, write_parquet
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.runtime import deterministic, resolve_device, resolve_precision
from meddap.common.seeds import derive_seed
from meddap.common.settings import Augment, Classifier
from meddap.common.splits import SPLITS, check_labels, read_table, split_rows
from meddap.common.training import Batch, Fit, Validation, check_budget, fit
from meddap.common.weights import write_weights
from meddap.trainsets import CLASSIFIER, parse

log = logging.getLogger(__name__)
SELECTION = "highest val accuracy; ties: lower val cross-entropy, then the earlier update"
COLUMNS = ["id", "label", "image_path"]


@dataclass
class Images:
    """uint8 grayscale images (N, 1, S, S) and their class indices (N,)."""

    pixels: torch.Tensor
    targets: torch.Tensor


@dataclass
class ClassifierTask:
    """Cross-entropy on (augmented, class-balanced) train images; val accuracy, then CE, ranks."""

    train: Images
    val: Images
    batch_size: int
    augment: v2.Transform | None
    balance: str = "none"

    def __post_init__(self) -> None:
        loss = self.balance == "loss"
        self._weights = class_weights(self.train.targets, len(CLASSES)) if loss else None

    def indices(self, order: torch.Generator) -> list[torch.Tensor]:
        """One pass's index batches (`meddap.cls.balance`)."""
        return pass_indices(self.train.targets, self.batch_size, self.balance, order)

    def batch(self, index: torch.Tensor, order: torch.Generator) -> Batch:
        """The images of `index`, each augmented with draws from torch's global RNG."""
        pixels = self.train.pixels[index]
        if self.augment is not None:
            pixels = torch.stack([self.augment(image) for image in pixels])
        return Batch(normalise(pixels), self.train.targets[index])

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits (class-weighted with balance `loss`)."""
        weight = None if self._weights is None else self._weights.to(output.device)
        return F.cross_entropy(output, targets, weight=weight)

    def validate(self, model: torch.nn.Module) -> Validation:
        """Val accuracy and cross-entropy; the val probabilities (float64) as outputs."""
        probs = predict(model, self.val.pixels, self.batch_size)
        targets = self.val.targets.numpy()
        scores = {
            "val_accuracy": float(np.mean(probs.argmax(1) == targets)),
            "val_loss": float(log_loss(targets, probs, labels=range(len(CLASSES)))),
        }
        return Validation(scores, torch.from_numpy(probs))

    def score_key(self, entry: dict[str, float]) -> tuple[float, float]:
        """Accuracy up, then cross-entropy down (the loop breaks ties by the earlier update)."""
        return entry["val_accuracy"], -entry["val_loss"]


def train_classifier(
    *,
    manifest: str,
    splits: str,
    synthetic: str | list[str],
    external: str | list[str],
    weights: str,
    predictions: str,
    metrics: str,
    fold: int,
    model: str,
    trainset: str,
    classifier: Classifier,
    seed: int,
) -> None:
    """Job: train `model` on `trainset` of fold `fold`; write weights, predictions, metrics."""
    how = classifier
    check_budget(how.training, "classifier.training")
    check_balance(how.balance)
    device = resolve_device(how.device, "classifier.device")
    precision = resolve_precision(how.mixed_precision, "classifier.mixed_precision", device)
    tables = {split: split_rows(manifest, splits, fold, split) for split in SPLITS}
    synth = _synthetic_rows(_paths(synthetic), fold, trainset, tables["train"])
    afterwards = [("test", tables["test"]), *_external_tables(_paths(external))]
    job_seed = derive_seed(seed, "classifier", fold, model)
    torch.manual_seed(job_seed)
    net = build_model(model, len(CLASSES), how.pretrained).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=how.learning_rate)
    log.info("%s: %d real + %d synthetic train images", model, len(tables["train"]), len(synth))
    train = pd.concat([tables["train"], synth], ignore_index=True)
    run = {"model": model, "trainset": trainset, "fold": fold, "seed": seed}
    checkpoint = _checkpoint(weights, [manifest, splits, *_paths(synthetic)], how, **run)
    with deterministic(device):
        task = ClassifierTask(
            _images(train, how.image_size),
            _images(tables["val"], how.image_size),
            how.batch_size,
            _augmenter(how.augment, how.image_size),
            how.balance,
        )
        fitted = {"budget": how.training, "seed": job_seed, "precision": precision}
        best = fit(net, optimizer, task, **fitted, checkpoint=checkpoint)
        net.load_state_dict(best.state)
        scored = {"val": (tables["val"], best.outputs.numpy())}
        scored |= {name: (table, _predict(net, table, how)) for name, table in afterwards}
    _save_weights(best, weights, model, how)
    write_parquet(_prediction_table(scored), predictions)
    counts = {"n_train_real": len(tables["train"]), "n_train_synthetic": len(synth)}
    write_json({**_summary(best, model, trainset, fold, how), **counts, **_scores(scored)}, metrics)
    checkpoint.remove()


def _summary(best: Fit, model: str, trainset: str, fold: int, how: Classifier) -> dict:
    """What metrics.json says about the run besides the counts and scores."""
    return {
        "model": model,
        "trainset": trainset,
        "fold": fold,
        "classes": list(CLASSES),
        "image_size": how.image_size,
        "pretrained_used": _pretrained_used(model, how.pretrained),
        "balance": how.balance,
        "selection": SELECTION,
        **best.record(how.training),
    }


def _checkpoint(weights: str, inputs: list[str], how: Classifier, **run: object) -> Checkpoint:
    """checkpoint.pt beside `weights`, for this run, these settings and these input tables."""
    tables = [file_sha256(path) for path in inputs]
    run_fingerprint = fingerprint(**run, settings=how.params(), inputs_sha256=tables)
    return Checkpoint(Path(weights).parent / "checkpoint.pt", run_fingerprint)


def _predict(model: torch.nn.Module, table: pd.DataFrame, how: Classifier) -> np.ndarray:
    """Class probabilities of the images of `table`."""
    return predict(model, _images(table, how.image_size).pixels, how.batch_size)


def _paths(value: str | Sequence[str]) -> list[str]:
    """A Snakemake input given as one path or a list of paths, as a list."""
    return [value] if isinstance(value, str) else [str(path) for path in value]


def _augmenter(augment: Augment, size: int) -> v2.Transform | None:
    """The on-the-fly transform of `classifier.augment` (None when every step is off)."""
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip()] if augment.hflip else []
    if augment.rotation:
        steps.append(
            v2.RandomRotation(augment.rotation, interpolation=v2.InterpolationMode.BILINEAR)
        )
    if augment.crop < 1:
        steps.append(v2.RandomResizedCrop(size, scale=(augment.crop, 1.0), antialias=True))
    if augment.jitter:
        steps.append(v2.ColorJitter(brightness=augment.jitter, contrast=augment.jitter))
    return v2.Compose(steps) if steps else None


def _synthetic_rows(
    synthetic: list[str], fold: int, trainset: str, train: pd.DataFrame
) -> pd.DataFrame:
    """The synthetic images (id, label, image_path) that `trainset` adds to the real `train` rows.

    A mask-conditioned `{setting}-1to{k}` adds the pairs its segmenter adds: the pool's first
    k x the train split's lesion images.
    """
    rows = parse(trainset).added_rows(synthetic, fold, train, CLASSIFIER)
    if rows is None:
        return pd.DataFrame(columns=COLUMNS)
    return check_labels(rows, synthetic[0])[COLUMNS]


def _external_tables(paths: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """("external:<dataset>", images sorted by id) per external manifest."""
    named = []
    for path in paths:
        table = read_table(path, COLUMNS)
        names = set(table["dataset"]) if "dataset" in table.columns else set()
        if len(names) != 1:
            raise MeddapError(f"{path} must name exactly one dataset in column 'dataset'")
        images = check_labels(table, path)[COLUMNS].sort_values("id", kind="stable")
        if not images["label"].isin(EXTERNAL_CLASSES).any():
            raise MeddapError(f"{path} holds no benign or malignant image to evaluate on")
        named.append((f"external:{names.pop()}", images.reset_index(drop=True)))
    if len({name for name, _ in named}) != len(named):
        raise MeddapError(f"the external manifests {paths} name the same dataset twice")
    return named


def _images(table: pd.DataFrame, size: int) -> Images:
    targets = torch.tensor([CLASSES.index(label) for label in table["label"]])
    return Images(load_images(list(table["image_path"]), size), targets)


def _prediction_table(scored: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> pd.DataFrame:
    """id, split, label, prob_<class>..., prediction for every scored image."""
    frames = []
    for split, (table, probs) in scored.items():
        frame = pd.DataFrame({"id": table["id"], "split": split, "label": table["label"]})
        for k, name in enumerate(CLASSES):
            frame[f"prob_{name}"] = probs[:, k]
        frame["prediction"] = [CLASSES[k] for k in probs.argmax(axis=1)]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _scores(scored: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> dict:
    """val and test metrics over the classes; external ones benign vs malignant."""
    result: dict = {"external": {}}
    for split, (table, probs) in scored.items():
        if split.startswith("external:"):
            dataset = split.removeprefix("external:")
            result["external"][dataset] = external_metrics(table["label"], probs, CLASSES)
        else:
            result[split] = classification_metrics(table["label"], probs, CLASSES)
    return result


def _pretrained_used(model: str, pretrained: str) -> str:
    return "none" if pretrained == "none" else f"imagenet ({imagenet_checkpoint(model).name})"


def _save_weights(best: Fit, path: str, model: str, how: Classifier) -> None:
    """The kept state as safetensors with its metadata."""
    meta = {"model": model, "classes": list(CLASSES), "best_update": best.update}
    meta["image_size"] = how.image_size
    write_weights(best.state, meta, path)
