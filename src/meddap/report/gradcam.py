"""Fig. 2: Grad-CAM heat maps of a real-only and an augmented classifier on the same test images.

The heat maps explain the score of each image's true class at the last convolutional block of
the torchvision model (its `cam_layer` in `meddap.cls.registry`). Images are prepared exactly
as for training.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from meddap.cls.models import load_classifier, normalise, predict
from meddap.cls.registry import CLASSIFIERS
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.settings import Classifier
from meddap.common.splits import split_rows
from meddap.report.plotting import save_figure
from meddap.trainsets import TextSet, parse


def first_test_images(manifest: str, splits: str, fold: int, n_images: int) -> pd.DataFrame:
    """The first `n_images` test images (id, label, image_path) of fold `fold`, by id."""
    return split_rows(manifest, splits, fold, "test").head(n_images)


def cam_overlays(
    net: torch.nn.Module, model: str, pixels: torch.Tensor, targets: list[int]
) -> np.ndarray:
    """Grad-CAM of class `targets[i]` over uint8 image `pixels[i]` (N, 1, S, S): (N, S, S, 3)."""
    layer = net.get_submodule(CLASSIFIERS.get(model, "Grad-CAM model").cam_layer)
    with GradCAM(model=net.eval(), target_layers=[layer]) as cam:
        maps = cam(
            input_tensor=normalise(pixels), targets=[ClassifierOutputTarget(t) for t in targets]
        )
    gray = pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy().astype(np.float32) / 255
    return np.stack(
        [show_cam_on_image(g, m, use_rgb=True) for g, m in zip(gray, maps, strict=True)]
    )


def best_augmented(
    table2: str, model: str, augmented_models: list[str], augmented_trainsets: list[str]
) -> str:
    """The weights among `augmented_models` (of `augmented_trainsets`) of Table 2's best setting."""
    table = pd.read_parquet(table2)
    rows = table[(table.model == model) & table.ratio.notna()]
    if rows.empty:
        raise MeddapError(f"{table2} has no augmented row for model {model}")
    wanted = (rows.adjective.iloc[0], int(rows.ratio.iloc[0]))
    if len(augmented_models) != len(augmented_trainsets):
        raise MeddapError(
            f"{len(augmented_models)} augmented models but {len(augmented_trainsets)} trainsets"
        )
    found = [
        path
        for path, trainset in zip(augmented_models, augmented_trainsets, strict=True)
        if isinstance(parsed := parse(trainset), TextSet)
        and (parsed.adjective, parsed.ratio) == wanted
    ]
    if len(found) != 1:
        raise MeddapError(
            f"expected one {model} classifier of Table 2's best setting {wanted[0]}-{wanted[1]} "
            f"({table2}) among the inputs, found {len(found)}"
        )
    return found[0]


def gradcam_figure(
    *,
    manifest: str,
    splits: str,
    real_model: str,
    augmented_models: list[str],
    table2: str,
    figure: str,
    model: str,
    fold: int,
    augmented_trainsets: list[str],
    classifier: Classifier,
    n_images: int,
) -> None:
    """Job: test image | real-only heat map | best augmented heat map, one row per image (Fig. 2).

    The augmented classifier is Table 2's best setting (chosen on validation); its column is
    named after its trainset.
    """
    augmented_model = best_augmented(table2, model, augmented_models, augmented_trainsets)
    trainset = augmented_trainsets[list(augmented_models).index(augmented_model)]
    images = first_test_images(manifest, splits, fold, n_images)
    pixels = load_images(list(images.image_path), classifier.image_size)
    targets = [CLASSES.index(label) for label in images.label]
    columns = {"real": real_model, trainset: augmented_model}
    panels = {}
    for name, weights in columns.items():
        net = load_classifier(model, weights)
        predicted = predict(net, pixels, len(pixels)).argmax(axis=1)
        panels[name] = (cam_overlays(net, model, pixels, targets), predicted)
    _draw(images, pixels, panels, figure, f"{model}, fold {fold}")


def _draw(
    images: pd.DataFrame,
    pixels: torch.Tensor,
    panels: dict[str, tuple[np.ndarray, np.ndarray]],
    figure: str,
    title: str,
) -> None:
    """One row per image: the image, then each classifier's overlay titled with its prediction."""
    n = len(images)
    fig, axes = plt.subplots(n, 1 + len(panels), figsize=(2.0 * (1 + len(panels)), 2.1 * n))
    axes = np.atleast_2d(axes)
    for i, (image_id, label) in enumerate(zip(images.id, images.label, strict=True)):
        axes[i][0].imshow(pixels[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[i][0].set_title(f"{image_id} ({label})", fontsize=7)
        for j, (name, (overlays, predicted)) in enumerate(panels.items(), start=1):
            axes[i][j].imshow(overlays[i])
            axes[i][j].set_title(f"{name}: predicts {CLASSES[predicted[i]]}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"Grad-CAM of the true class ({title})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, figure)
