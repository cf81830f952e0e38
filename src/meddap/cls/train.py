"""Downstream classifiers: a torchvision CNN trained on a fold's real train split (+ synthetic).

Images are read once as grayscale, resized to `image_size`, replicated to 3 channels and
normalised with the ImageNet mean and std. Training uses Adam and cross-entropy with optional
on-the-fly flips and rotations. After every epoch the model predicts the val split; the kept
checkpoint is the epoch with the highest val accuracy (ties: lower val cross-entropy, then the
earlier epoch). Test and external images are read and predicted once, after training.
After every epoch the job saves its state in checkpoint.pt beside the weights; a rerun of the
same job continues from there (on CPU with the bytes of an uninterrupted run), and the file is
deleted once all outputs are written.
The initial weights depend on (seed, fold, model) only, so the trainsets of a fold and model
start from the same network and differ only by their data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.metrics import log_loss
from torchvision.transforms import v2

from meddap.cls.metrics import EXTERNAL_CLASSES, classification_metrics, external_metrics
from meddap.cls.models import build_model, imagenet_checkpoint, normalise, predict
from meddap.common.atomic import atomic_path, write_json, write_parquet
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.seeds import derive_seed
from meddap.common.trainsets import load_synthetic, parse_trainset

log = logging.getLogger(__name__)
META_KEY = "meddap"
SELECTION = "highest val accuracy; ties: lower val cross-entropy, then the earlier epoch"


@dataclass(frozen=True)
class Settings:
    """The config section `classifier` as used by one training job."""

    image_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    pretrained: str
    augment: dict
    device: str

    @classmethod
    def from_config(cls, settings: dict) -> Settings:
        """Pick this job's keys from `classifier`; a missing key stops with its name."""
        for key in [f.name for f in fields(cls)] + ["augment.hflip", "augment.rotation"]:
            section, _, sub = key.partition(".")
            if section not in settings or (sub and sub not in settings[section]):
                raise MeddapError(f"config key classifier.{key} is missing")
        return cls(**{f.name: settings[f.name] for f in fields(cls)})


@dataclass
class Images:
    """uint8 grayscale images (N, 1, S, S) and their class indices (N,)."""

    pixels: torch.Tensor
    targets: torch.Tensor


@dataclass
class Fit:
    """The best epoch of a training run: its weights, val probabilities and the history."""

    state: dict[str, torch.Tensor]
    epoch: int
    val_probabilities: np.ndarray
    history: list[dict]


@dataclass(frozen=True)
class Checkpoint:
    """Where `fit` saves its state after every epoch, and the fingerprint of the run it is for."""

    path: Path
    run: str


def fit(
    model: torch.nn.Module,
    train: Images,
    val: Images,
    how: Settings,
    seed: int,
    *,
    checkpoint: Checkpoint | None = None,
) -> Fit:
    """Train for `how.epochs` epochs and keep the epoch that scores best on `val`.

    With `checkpoint`, continue from its file if it holds this run, and save it after every epoch.
    """
    if how.epochs < 1:
        raise MeddapError(f"config key classifier.epochs must be at least 1, got {how.epochs}")
    optimizer = torch.optim.Adam(model.parameters(), lr=how.learning_rate)
    order = torch.Generator().manual_seed(seed)
    augment = _augmenter(how.augment)
    best = _resume(checkpoint, model, optimizer, order) if checkpoint else None
    history = best.history if best else []
    for epoch in range(len(history) + 1, how.epochs + 1):
        loss = _train_epoch(model, optimizer, train, how.batch_size, order, augment)
        probs = predict(model, val.pixels, how.batch_size)
        scores = _val_scores(epoch, loss, val.targets.numpy(), probs)
        log.info(
            "epoch %d: train loss %.4f, val accuracy %.4f", epoch, loss, scores["val_accuracy"]
        )
        if not history or _rank(scores) > max(map(_rank, history)):
            best = Fit(_copy_state(model), epoch, probs, history)
        history.append(scores)
        if checkpoint:
            _save_checkpoint(checkpoint, model, optimizer, order, best)
    return best


def train_classifier(
    *,
    manifest: str,
    splits: str,
    synthetic: list[str],
    weights: str,
    predictions: str,
    metrics: str,
    external: list[str],
    fold: int,
    model: str,
    trainset: str,
    settings: dict,
    seed: int,
) -> None:
    """Job: train `model` on `trainset` of fold `fold`; write weights, predictions, metrics."""
    how = Settings.from_config(settings)
    device = _device(how.device)
    tables = _split_tables(manifest, splits, fold)
    synth = _synthetic_rows(_paths(synthetic), fold, trainset, len(tables["train"]))
    afterwards = [("test", tables["test"]), *_external_tables(_paths(external))]
    job_seed = derive_seed(seed, "classifier", fold, model)
    torch.manual_seed(job_seed)
    net = build_model(model, len(CLASSES), how.pretrained).to(device)
    log.info("%s: %d real + %d synthetic train images", model, len(tables["train"]), len(synth))
    n_train, n_val = len(tables["train"]) + len(synth), len(tables["val"])
    run = {"model": model, "trainset": trainset, "fold": fold, "seed": seed}
    checkpoint = _checkpoint(weights, how, **run, n_train=n_train, n_val=n_val)
    with _deterministic(device):
        train = _images(pd.concat([tables["train"], synth], ignore_index=True), how.image_size)
        val = _images(tables["val"], how.image_size)
        best = fit(net, train, val, how, job_seed, checkpoint=checkpoint)
        net.load_state_dict(best.state)
        scored = {"val": (tables["val"], best.val_probabilities)}
        for name, table in afterwards:
            pixels = _images(table, how.image_size).pixels
            scored[name] = (table, predict(net, pixels, how.batch_size))
    _save_weights(best, weights, model, how)
    write_parquet(_prediction_table(scored), predictions)
    summary = {
        "model": model,
        "trainset": trainset,
        "fold": fold,
        "classes": list(CLASSES),
        "image_size": how.image_size,
        "pretrained_used": _pretrained_used(model, how.pretrained),
        "n_train_real": len(tables["train"]),
        "n_train_synthetic": len(synth),
        "best_epoch": best.epoch,
        "selection": SELECTION,
        "history": best.history,
    }
    write_json({**summary, **_scores(scored)}, metrics)
    checkpoint.path.unlink(missing_ok=True)


def _paths(value: str | Sequence[str]) -> list[str]:
    """A Snakemake input given as one path or a list of paths, as a list."""
    return [value] if isinstance(value, str) else [str(path) for path in value]


def _augmenter(augment: dict) -> v2.Transform | None:
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip()] if augment["hflip"] else []
    if augment["rotation"]:
        steps.append(
            v2.RandomRotation(augment["rotation"], interpolation=v2.InterpolationMode.BILINEAR)
        )
    return v2.Compose(steps) if steps else None


def _batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one joins the one before (BatchNorm needs 2)."""
    batches = list(torch.randperm(n, generator=generator).split(size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Images,
    batch_size: int,
    generator: torch.Generator,
    augment: v2.Transform | None,
) -> float:
    """One pass over `data`; returns the mean training cross-entropy."""
    model.train()
    device = next(model.parameters()).device
    total = 0.0
    for index in _batches(len(data.targets), batch_size, generator):
        pixels = data.pixels[index]
        if augment is not None:
            pixels = torch.stack([augment(image) for image in pixels])
        optimizer.zero_grad()
        loss = F.cross_entropy(model(normalise(pixels).to(device)), data.targets[index].to(device))
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return total / len(data.targets)


def _val_scores(epoch: int, loss: float, targets: np.ndarray, probs: np.ndarray) -> dict:
    """One history entry: train loss, val accuracy and val cross-entropy of an epoch."""
    return {
        "epoch": epoch,
        "train_loss": loss,
        "val_accuracy": float(np.mean(probs.argmax(1) == targets)),
        "val_loss": float(log_loss(targets, probs, labels=range(len(CLASSES)))),
    }


def _rank(scores: dict) -> tuple[float, float, int]:
    """The selection rule as a sort key: accuracy up, cross-entropy down, earlier epoch first."""
    return scores["val_accuracy"], -scores["val_loss"], -scores["epoch"]


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _checkpoint(weights: str, how: Settings, **run: object) -> Checkpoint:
    """checkpoint.pt beside `weights`, fingerprinted by `run` and the settings as JSON."""
    fingerprint = json.dumps({**run, "settings": asdict(how)}, sort_keys=True)
    return Checkpoint(Path(weights).parent / "checkpoint.pt", fingerprint)


def _save_checkpoint(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
    best: Fit,
) -> None:
    """Atomically save all that the next epochs depend on: weights, optimizer, RNGs, best."""
    state = {
        "run": checkpoint.run,
        "epoch": len(best.history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "order": order.get_state(),
        "rng": torch.get_rng_state(),  # the augmentations and dropout draw from it
        "best": {
            "state": best.state,
            "epoch": best.epoch,
            "val_probabilities": torch.from_numpy(best.val_probabilities),
        },
        "history": best.history,
    }
    with atomic_path(checkpoint.path) as tmp:
        torch.save(state, tmp)


def _resume(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
) -> Fit | None:
    """Restore a saved state of this run and return its best epoch; drop one of another run."""
    if not checkpoint.path.is_file():
        return None
    state = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    if state["run"] != checkpoint.run:
        log.warning("discarding %s: it was saved by another run", checkpoint.path)
        checkpoint.path.unlink()
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    order.set_state(state["order"])
    torch.set_rng_state(state["rng"])
    log.info("resumed from %s (epoch %d)", checkpoint.path, state["epoch"])
    best = state["best"]
    return Fit(best["state"], best["epoch"], best["val_probabilities"].numpy(), state["history"])


def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice not in ("cpu", "cuda"):
        raise MeddapError(f"config key classifier.device: {choice!r} is not auto, cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise MeddapError("config key classifier.device is cuda but no CUDA GPU is available")
    return torch.device(choice)


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training (errors on CPU, warnings on GPU), then restore."""
    before = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def _split_tables(manifest: str, splits: str, fold: int) -> dict[str, pd.DataFrame]:
    """Fold `fold`'s train, val and test images (id, label, image_path), each sorted by id."""
    table = pd.read_parquet(splits)
    table = table[table["fold"] == fold]
    images = _check_table(pd.read_parquet(manifest), manifest)
    merged = table.merge(images, on="id", how="left", validate="one_to_one")
    if merged["image_path"].isna().any():
        raise MeddapError(f"{splits} lists ids of fold {fold} that {manifest} does not hold")
    parts = {}
    for split in ("train", "val", "test"):
        part = merged[merged["split"] == split].sort_values("id", kind="stable")
        if part.empty:
            raise MeddapError(f"{splits} has no {split} images for fold {fold}")
        parts[split] = part[["id", "label", "image_path"]].reset_index(drop=True)
    return parts


def _check_table(table: pd.DataFrame, path: str) -> pd.DataFrame:
    """The id, label and image_path columns of a manifest whose labels are all classes."""
    missing = [c for c in ("id", "label", "image_path") if c not in table.columns]
    if missing:
        raise MeddapError(f"{path} lacks the columns {missing}")
    unknown = sorted(set(table["label"]) - set(CLASSES))
    if unknown:
        raise MeddapError(f"{path} has labels {unknown} outside {list(CLASSES)}")
    return table[["id", "label", "image_path"]]


def _synthetic_rows(synthetic: list[str], fold: int, trainset: str, n_train: int) -> pd.DataFrame:
    """The synthetic images (id, label, image_path) that `trainset` adds to the real ones."""
    wanted = 0 if parse_trainset(trainset) is None else 1
    if len(synthetic) != wanted:
        raise MeddapError(
            f"trainset {trainset} needs {wanted} synthetic manifest(s), got {len(synthetic)}"
        )
    if not synthetic:
        return pd.DataFrame(columns=["id", "label", "image_path"])
    rows = load_synthetic(synthetic[0], fold, trainset, n_train)
    return _check_table(rows, synthetic[0])


def _external_tables(paths: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """("external:<dataset>", images sorted by id) per external manifest."""
    named = []
    for path in paths:
        table = pd.read_parquet(path)
        names = set(table["dataset"]) if "dataset" in table.columns else set()
        if len(names) != 1:
            raise MeddapError(f"{path} must name exactly one dataset in column 'dataset'")
        images = _check_table(table, path).sort_values("id", kind="stable")
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


def _save_weights(best: Fit, path: str, model: str, how: Settings) -> None:
    """The kept state as safetensors; one JSON metadata entry (several come in random order)."""
    meta = {"model": model, "classes": list(CLASSES), "best_epoch": best.epoch}
    meta["image_size"] = how.image_size
    with atomic_path(path) as tmp:
        save_file(best.state, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
