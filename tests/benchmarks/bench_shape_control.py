"""A control for the real-data classifier: how far lesion shape alone separates the classes.

    python tests/benchmarks/bench_shape_control.py --results <run>/results --dataset bus_bra \
        [--folds 0 1 2 3 4]

Reads a finished run of the real-data preset (`config/real-cpu.yaml`): the data stage's manifest
and splits, and each fold's real-only UNet (`seg/<dataset>/fold<k>/unet/real/model.safetensors`).
For every lesion image it measures nine shape features of the largest component of a mask at the
UNet's image size (the squashed square the models see): log area, circularity, solidity,
eccentricity, box height / width, extent, |sin(orientation)|, axis ratio and perimeter over the
convex hull's. A class-weighted logistic regression (scikit-learn) is fitted on the train and val
splits and scored on the test split, once on the dataset's own masks (the lesion as delineated)
and once on the fold's UNet's predicted masks (fitted and scored on predictions). It prints, per
fold and mask source, test balanced accuracy, recall per class and the AUC of the second class.
No training: about 15 s per fold on the 2-core machine (the UNet's predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from skimage import measure
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from meddap.common.weights import read_weights
from meddap.seg.data import Pairs, fold_rows, load_pairs
from meddap.seg.models import build_segmenter, predict_logits

SPLITS = ("train", "val", "test")
TABLES = ("manifest.parquet", "splits.parquet")


def shape_features(mask: np.ndarray) -> list[float]:
    """The nine shape features of the largest component of a binary mask (zeros when empty)."""
    regions = measure.regionprops(measure.label(mask))
    if not regions:
        return [0.0] * 9
    lesion = max(regions, key=lambda r: r.area)
    top, left, bottom, right = lesion.bbox
    hull = measure.regionprops(lesion.image_convex.astype(np.uint8))[0].perimeter
    return [
        float(np.log(lesion.area)),
        4 * np.pi * lesion.area / max(lesion.perimeter, 1) ** 2,
        lesion.solidity,
        lesion.eccentricity,
        (bottom - top) / (right - left),
        lesion.extent,
        abs(np.sin(lesion.orientation)),
        lesion.axis_major_length / max(lesion.axis_minor_length, 1),
        lesion.perimeter / max(hull, 1),
    ]


def features(masks: np.ndarray) -> np.ndarray:
    """(N, 9) shape features of (N, S, S) binary masks."""
    return np.array([shape_features(mask) for mask in masks])


def score(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> str:
    """Test balanced accuracy, recalls and AUC of a logistic regression fitted on `train`."""
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
    model.fit(*train)
    x, y = test
    predicted = model.predict(x)
    recalls = recall_score(y, predicted, average=None)
    auc = roc_auc_score(y, model.predict_proba(x)[:, 1])
    return (
        f"balanced accuracy {balanced_accuracy_score(y, predicted):.3f}, recall "
        f"{' / '.join(f'{r:.2f}' for r in recalls)}, AUC {auc:.3f}"
    )


def unet(path: Path) -> tuple[torch.nn.Module, int]:
    """A fold's trained UNet and its image size, from its weights file's metadata."""
    state, meta = read_weights(str(path), "UNet weights")
    net = build_segmenter(meta["model"], meta["channels"])
    net.load_state_dict(state)
    return net, meta["image_size"]


def fold_control(results: Path, dataset: str, fold: int) -> dict[str, str]:
    """Per mask source ('delineated', 'unet'), the shape classifier's test scores of `fold`."""
    net, size = unet(results / f"seg/{dataset}/fold{fold}/unet/real/model.safetensors")
    manifest, splits = (str(results / "data" / dataset / name) for name in TABLES)
    pairs: dict[str, Pairs] = {
        split: load_pairs(fold_rows(manifest, splits, fold, split, "lesions"), size)
        for split in SPLITS
    }
    classes = sorted(set(pairs["train"].labels))
    labels = {s: np.array([classes.index(label) for label in p.labels]) for s, p in pairs.items()}
    masks = {
        "delineated": {s: p.masks[:, 0].numpy() > 0 for s, p in pairs.items()},
        "unet": {s: predict_logits(net, p.images, 16)[:, 0].numpy() > 0 for s, p in pairs.items()},
    }
    out = {}
    for source, by_split in masks.items():
        x = {split: features(by_split[split]) for split in SPLITS}
        fit_on = (np.r_[x["train"], x["val"]], np.r_[labels["train"], labels["val"]])
        out[source] = score(fit_on, (x["test"], labels["test"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--dataset", default="bus_bra")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    for fold in args.folds:
        for source, line in fold_control(args.results, args.dataset, fold).items():
            print(f"fold {fold}, {source} masks: {line}", flush=True)


if __name__ == "__main__":
    main()
