"""A mode's test-split predictions (`predictions.npz`): ids, class probabilities, binary masks.

Written atomically, read back with a check of the arrays' names and shapes; combining two
single-task runs and prediction refining (PR) are jobs that read and write these files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meddap.common.atomic import atomic_path
from meddap.common.errors import MeddapError
from meddap.multitask.modes import parse_mode
from meddap.multitask.refine import refine

KEYS = ("ids", "probabilities", "classes", "masks")


@dataclass
class Predictions:
    """Per test image: its id, class probabilities (N, C), class index (N,), mask (N, 1, S, S)."""

    ids: list[str]
    probabilities: torch.Tensor
    classes: torch.Tensor
    masks: torch.Tensor

    def save(self, path: str) -> None:
        """Write the arrays as one compressed npz, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            np.savez_compressed(
                out,
                ids=np.array(self.ids),
                probabilities=self.probabilities.numpy(),
                classes=self.classes.numpy(),
                masks=self.masks.numpy().astype(bool),
            )

    @classmethod
    def load(cls, path: str) -> Predictions:
        """The predictions of `path`; a file without the expected arrays stops naming it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in KEYS}
        except (OSError, KeyError, ValueError) as err:
            raise MeddapError(f"{path} is not a predictions file with {KEYS} ({err})") from None
        n = len(arrays["ids"])
        if any(len(a) != n for a in arrays.values()) or arrays["masks"].ndim != 4:
            raise MeddapError(f"{path}: arrays {KEYS} must have one entry per image")
        return cls(
            [str(i) for i in arrays["ids"]],
            torch.from_numpy(arrays["probabilities"]),
            torch.from_numpy(arrays["classes"]),
            torch.from_numpy(arrays["masks"]),
        )


def combine_predictions(*, segmentation: str, classification: str, predictions: str) -> None:
    """Job: the `combined` mode, the masks of a `seg` run and the classes of a `cls` run."""
    masks, classes = Predictions.load(segmentation), Predictions.load(classification)
    if masks.ids != classes.ids:
        raise MeddapError(f"{segmentation} and {classification} predict different test images")
    Predictions(classes.ids, classes.probabilities, classes.classes, masks.masks).save(predictions)


def refine_predictions(*, predictions: str, refined: str, mode: str) -> None:
    """Job: prediction refining (PR) of a mode that predicts both class and mask."""
    if not parse_mode(mode).refinable:
        raise MeddapError(f"mode {mode!r} does not predict both a class and a mask: no PR")
    raw = Predictions.load(predictions)
    classes, masks = refine(raw.classes, raw.masks)
    Predictions(raw.ids, raw.probabilities, classes, masks).save(refined)
