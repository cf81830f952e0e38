"""Real-only classifiers evaluated on each synthetic set (the data of Fig. 1a).

A good score means the synthetic images look like the real classes to a real-only classifier;
the paper reads very high scores as little new information and very low ones as images far
from the real distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meddap.cls.metrics import classification_metrics
from meddap.cls.models import load_classifier, predict
from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.settings import Classifier
from meddap.common.splits import read_table

BATCH_SIZE = 64
KEYS = ("fold", "rank", "adjective")


def evaluate_on_synthetic(
    *, real_model: str, synth_manifest: str, result: str, model: str, classifier: Classifier
) -> None:
    """Job: accuracy (and per-class scores) of a real-only classifier on one synthetic set."""
    table = read_table(synth_manifest, ["label", "image_path", "index", *KEYS])
    table = table.sort_values("index", kind="stable")
    keys = {key: _single(table, key, synth_manifest) for key in KEYS}
    net = load_classifier(model, real_model)
    size = classifier.image_size
    probs = predict(net, load_images(list(table.image_path), size), BATCH_SIZE)
    scores = classification_metrics(list(table.label), probs, CLASSES)
    source = {"classifier": real_model, "synth_manifest": synth_manifest}
    write_json({"model": model, "image_size": size, **keys, **source, **scores}, result)


def _single(table: pd.DataFrame, column: str, path: str) -> int | str:
    values = table[column].unique()
    if len(values) != 1:
        raise MeddapError(f"{path} must hold one {column}, got {sorted(map(str, values))}")
    value = values[0]
    return int(value) if isinstance(value, np.integer) else value
