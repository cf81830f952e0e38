"""Figures from trained classifiers: Grad-CAM (Fig. 2) and real-only scores on synthetic sets
(Fig. 1a), with random-weight torchvision models on the shared phantom fold and synthetic set
(tests/conftest.py); six rows whose splits are stored out of id order test the choice of the
first test images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from snakemake.iocontainers import Namedlist

from meddap.cls import evaluate as synthetic_eval
from meddap.cls.models import build_model
from meddap.cls.registry import CLASSIFIERS
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.settings import Classifier
from meddap.report import figures, gradcam
from tests.conftest import REPO, PhantomFold

SIZE = 64
LABELS = ("benign", "malignant", "normal", "benign", "benign", "malignant")


def _classifier(image_size: int = SIZE) -> Classifier:
    """The default config's classifier settings at `image_size` (what the rules pass)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return dataclasses.replace(Classifier.from_config(config), image_size=image_size)


def _weights(path: Path, seed: int, model: str = "squeezenet1_1") -> tuple[str, torch.nn.Module]:
    torch.manual_seed(seed)
    net = build_model(model, len(CLASSES), "none")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return str(path), net


@pytest.fixture()
def dataset(tmp_path: Path) -> dict[str, str]:
    """Six images (not written: only their rows are read), split rows out of id order: fold 0's
    test holds img5, img3, img1 in that order."""
    rows = {
        "id": [f"img{k}" for k in range(len(LABELS))],
        "label": list(LABELS),
        "image_path": [str(tmp_path / f"img{k}.png") for k in range(len(LABELS))],
    }
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet")
    splits = pd.DataFrame(
        {
            "id": [f"img{k}" for k in (5, 3, 1, 0, 2, 4)],
            "fold": [0, 0, 0, 0, 1, 1],
            "split": ["test", "test", "test", "train", "test", "test"],
        }
    )
    splits.to_parquet(tmp_path / "splits.parquet")
    return {
        "manifest": str(tmp_path / "manifest.parquet"),
        "splits": str(tmp_path / "splits.parquet"),
    }


def test_first_test_images_are_the_folds_first_test_ids(dataset: dict[str, str]) -> None:
    chosen = gradcam.first_test_images(dataset["manifest"], dataset["splits"], 0, 2)
    assert chosen.id.tolist() == ["img1", "img3"]
    assert chosen.label.tolist() == ["malignant", "benign"]
    with pytest.raises(MeddapError, match="no test images for fold 7"):
        gradcam.first_test_images(dataset["manifest"], dataset["splits"], 7, 2)


@pytest.mark.parametrize("model", CLASSIFIERS.names())
def test_cam_overlays_at_each_models_target_layer(tmp_path: Path, model: str) -> None:
    _, net = _weights(tmp_path / "w.safetensors", 0, model)
    pixels = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    overlays = gradcam.cam_overlays(net, model, pixels, [1, 2])
    assert overlays.shape == (2, 32, 32, 3) and overlays.dtype == np.uint8
    gray = pixels[:, 0].numpy()
    assert not np.array_equal(overlays[..., 0], overlays[..., 2])  # coloured, not the gray image
    assert np.abs(overlays.astype(int).mean(axis=3) - gray).mean() > 1


def test_cam_overlays_refuse_unknown_model(tmp_path: Path) -> None:
    _, net = _weights(tmp_path / "w.safetensors", 0)
    with pytest.raises(MeddapError, match="alexnet"):
        gradcam.cam_overlays(net, "alexnet", torch.zeros(1, 1, 32, 32, dtype=torch.uint8), [0])


def test_gradcam_figure_is_written_deterministically(
    tmp_path: Path, phantom_fold: PhantomFold
) -> None:
    real, _ = _weights(tmp_path / "real.safetensors", 1)
    augmented, _ = _weights(tmp_path / "augmented.safetensors", 2)
    table2 = tmp_path / "table2.parquet"
    rows = {"model": ["squeezenet1_1"] * 2, "adjective": [None, "bright"], "ratio": [None, 50]}
    pd.DataFrame(rows).to_parquet(table2)
    others = [str(tmp_path / f"other{k}.safetensors") for k in (0, 1)]  # never read
    args = {"manifest": str(phantom_fold.manifest), "splits": str(phantom_fold.splits)}
    args |= {"real_model": real, "model": "squeezenet1_1", "table2": str(table2)}
    # as Snakemake passes them: its Namedlist, whose `index` is not list.index
    args["augmented_models"] = Namedlist([others[0], augmented, others[1]])
    args["augmented_trainsets"] = ["r4-bright-100", "r4-bright-50", "r4-dark-50"]
    args |= {"fold": 0, "classifier": _classifier(), "n_images": 2}
    paths = [tmp_path / "fig2.png", tmp_path / "again.png"]
    for path in paths:
        gradcam.gradcam_figure(**args, figure=str(path))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with Image.open(paths[0]) as image:
        assert image.size == (600, 420)  # 3 columns x 2 image rows at 100 dpi
    without_best = {
        "augmented_models": others,
        "augmented_trainsets": ["r4-bright-100", "r4-dark-50"],
    }
    with pytest.raises(MeddapError, match="best setting bright-50"):
        gradcam.gradcam_figure(**{**args, **without_best}, figure=str(paths[0]))


def test_best_augmented_goes_by_the_trainsets_passed_not_the_paths(tmp_path: Path) -> None:
    table2 = tmp_path / "table2.parquet"
    rows = {"model": ["resnet34", "resnet34"], "adjective": [None, "dark"], "ratio": [None, 100]}
    pd.DataFrame(rows).to_parquet(table2)
    models = ["a/r4-dark-100/model.safetensors", "b/model.safetensors"]
    chosen = gradcam.best_augmented(str(table2), "resnet34", models, ["r4-dark-50", "r4-dark-100"])
    assert chosen == "b/model.safetensors"
    with pytest.raises(MeddapError, match="2 augmented models but 1 trainsets"):
        gradcam.best_augmented(str(table2), "resnet34", models, ["r4-dark-100"])
    with pytest.raises(MeddapError, match="no augmented row for model squeezenet1_1"):
        gradcam.best_augmented(str(table2), "squeezenet1_1", models, ["r4-dark-50", "r4-dark-100"])


def test_real_only_classifier_on_a_synthetic_set(tmp_path: Path, synthetic_set: Path) -> None:
    """A squeezenet whose head always outputs benign scores the benign share of the set."""
    torch.manual_seed(0)
    net = build_model("squeezenet1_1", len(CLASSES), "none")
    state = net.state_dict()
    state["classifier.1.weight"].zero_()
    state["classifier.1.bias"].copy_(torch.tensor([0.0, 5.0, 0.0]))
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(tmp_path / "always_benign.safetensors")
    )
    synth = pd.read_parquet(synthetic_set)
    result = tmp_path / "eval.json"
    synthetic_eval.evaluate_on_synthetic(
        real_model=str(tmp_path / "always_benign.safetensors"),
        synth_manifest=str(synthetic_set),
        result=str(result),
        model="squeezenet1_1",
        classifier=_classifier(),
    )
    record = json.loads(result.read_text())
    assert 0 < record["accuracy"] < 1
    assert record["accuracy"] == pytest.approx((synth.label == "benign").mean())
    assert record["per_class"]["benign"]["sensitivity"] == 1.0
    assert (record["fold"], record["rank"], record["adjective"]) == (0, 2, "none")
    assert (record["image_size"], record["classifier"]) == (
        SIZE,
        str(tmp_path / "always_benign.safetensors"),
    )
    assert load_images([synth.image_path[0]], SIZE).shape == (1, 1, SIZE, SIZE)


def test_synthetic_manifest_of_mixed_adjectives_is_refused(
    tmp_path: Path, synthetic_set: Path
) -> None:
    synth = pd.read_parquet(synthetic_set)
    synth.assign(adjective=synth.adjective.where(synth["index"] > 0, "dark")).to_parquet(
        tmp_path / "synth.parquet"
    )
    with pytest.raises(MeddapError, match="must hold one adjective"):
        synthetic_eval.evaluate_on_synthetic(
            real_model=_weights(tmp_path / "w.safetensors", 0)[0],
            synth_manifest=str(tmp_path / "synth.parquet"),
            result=str(tmp_path / "eval.json"),
            model="squeezenet1_1",
            classifier=_classifier(),
        )
    assert not (tmp_path / "eval.json").exists()


def test_figure_1a_from_results(tmp_path: Path) -> None:
    results = []
    for k, (model, adjective, fold) in enumerate(
        (m, a, f) for m in ("resnet34", "squeezenet1_1") for a in ("none", "dark") for f in (0, 1)
    ):
        path = tmp_path / f"r{k}.json"
        record = {"model": model, "adjective": adjective, "fold": fold, "rank": 4}
        path.write_text(json.dumps(record | {"accuracy": 0.5 + 0.05 * k}))
        results.append(str(path))
    figures.figure_1a(results=results, figure=str(tmp_path / "fig1a.png"))
    with Image.open(tmp_path / "fig1a.png") as image:
        assert (image.format, image.size) == ("PNG", (400, 320))
    (tmp_path / "bad.json").write_text(json.dumps({"model": "resnet34"}))
    with pytest.raises(MeddapError, match="bad.json lacks the key"):
        figures.figure_1a(results=[str(tmp_path / "bad.json")], figure=str(tmp_path / "x"))
