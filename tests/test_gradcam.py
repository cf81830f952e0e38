"""Figures from trained classifiers: Grad-CAM (Fig. 2) and real-only scores on synthetic sets
(Fig. 1a), with random-weight torchvision models on small generated images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from meddap.cls import evaluate as synthetic_eval
from meddap.cls.models import build_model
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.report import figures, gradcam

SIZE = 64
LABELS = ("benign", "malignant", "normal", "benign", "benign", "malignant")


def _weights(path: Path, seed: int, model: str = "squeezenet1_1") -> tuple[str, torch.nn.Module]:
    torch.manual_seed(seed)
    net = build_model(model, len(CLASSES), "none")
    save_file(net.state_dict(), str(path))
    return str(path), net


@pytest.fixture()
def dataset(tmp_path: Path) -> dict[str, str]:
    """Six images with a bright disc of class-dependent size; ids img5..img0 in fold 0's test."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    rows = []
    for k, label in enumerate(LABELS):
        radius = 6 + 4 * CLASSES.index(label)
        disc = ((yy - 24) ** 2 + (xx - 20 - k) ** 2 < radius**2) * 120
        pixels = np.clip(rng.normal(60, 20, (48, 48)) + disc, 0, 255).astype(np.uint8)
        path = tmp_path / f"img{k}.png"
        Image.fromarray(pixels).save(path)
        rows.append({"id": f"img{k}", "label": label, "image_path": str(path), "index": k})
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    splits = pd.DataFrame(
        {
            "id": [f"img{k}" for k in (5, 3, 1, 0, 2, 4)],
            "fold": [0, 0, 0, 0, 1, 1],
            "split": ["test", "test", "test", "train", "test", "test"],
        }
    )
    splits.to_parquet(tmp_path / "splits.parquet")
    return {"manifest": str(manifest), "splits": str(tmp_path / "splits.parquet")}


def test_first_test_images_are_the_folds_first_test_ids(dataset: dict[str, str]) -> None:
    chosen = gradcam.first_test_images(dataset["manifest"], dataset["splits"], 0, 2)
    assert chosen.id.tolist() == ["img1", "img3"]
    assert chosen.label.tolist() == ["malignant", "benign"]
    with pytest.raises(MeddapError, match="no test images for fold 7"):
        gradcam.first_test_images(dataset["manifest"], dataset["splits"], 7, 2)


@pytest.mark.parametrize("model", sorted(gradcam.TARGET_LAYERS))
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
    tmp_path: Path, dataset: dict[str, str]
) -> None:
    real, _ = _weights(tmp_path / "real.safetensors", 1)
    (tmp_path / "r4-bright-50").mkdir()
    augmented, _ = _weights(tmp_path / "r4-bright-50/model.safetensors", 2)
    table2 = tmp_path / "table2.parquet"
    rows = {"model": ["squeezenet1_1"] * 2, "adjective": [None, "bright"], "ratio": [None, 50]}
    pd.DataFrame(rows).to_parquet(table2)
    others = [str(tmp_path / f"r4-{t}/model.safetensors") for t in ("bright-100", "dark-50")]
    args = dict(dataset, real_model=real, model="squeezenet1_1", table2=str(table2))
    args["augmented_models"] = [others[0], augmented, others[1]]
    args |= {"fold": 0, "image_size": SIZE, "n_images": 2}
    paths = [tmp_path / "fig2.png", tmp_path / "again.png"]
    for path in paths:
        gradcam.gradcam_figure(**args, figure=str(path))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with Image.open(paths[0]) as image:
        assert image.size == (600, 420)  # 3 columns x 2 image rows at 100 dpi
    with pytest.raises(MeddapError, match="best setting bright-50"):
        gradcam.gradcam_figure(**{**args, "augmented_models": others}, figure=str(paths[0]))


def test_real_only_classifier_on_a_synthetic_set(tmp_path: Path, dataset: dict[str, str]) -> None:
    """A squeezenet whose head always outputs benign scores the benign share of the set."""
    torch.manual_seed(0)
    net = build_model("squeezenet1_1", len(CLASSES), "none")
    state = net.state_dict()
    state["classifier.1.weight"].zero_()
    state["classifier.1.bias"].copy_(torch.tensor([0.0, 5.0, 0.0]))
    save_file(state, str(tmp_path / "always_benign.safetensors"))
    synth = pd.read_parquet(dataset["manifest"]).assign(fold=0, rank=4, adjective="bright")
    synth.to_parquet(tmp_path / "synth.parquet")
    result = tmp_path / "eval.json"
    synthetic_eval.evaluate_on_synthetic(
        classifier=str(tmp_path / "always_benign.safetensors"),
        synth_manifest=str(tmp_path / "synth.parquet"),
        result=str(result),
        model="squeezenet1_1",
        image_size=SIZE,
    )
    record = json.loads(result.read_text())
    assert record["accuracy"] == pytest.approx(LABELS.count("benign") / len(LABELS))
    assert record["per_class"]["benign"]["sensitivity"] == 1.0
    assert (record["fold"], record["rank"], record["adjective"]) == (0, 4, "bright")
    assert load_images([synth.image_path[0]], SIZE).shape == (1, 1, SIZE, SIZE)


def test_synthetic_manifest_of_mixed_adjectives_is_refused(
    tmp_path: Path, dataset: dict[str, str]
) -> None:
    synth = pd.read_parquet(dataset["manifest"]).assign(fold=0, rank=4)
    synth.assign(adjective=["dark", "bright"] * 3).to_parquet(tmp_path / "synth.parquet")
    with pytest.raises(MeddapError, match="must hold one adjective"):
        synthetic_eval.evaluate_on_synthetic(
            classifier=_weights(tmp_path / "w.safetensors", 0)[0],
            synth_manifest=str(tmp_path / "synth.parquet"),
            result=str(tmp_path / "eval.json"),
            model="squeezenet1_1",
            image_size=SIZE,
        )


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
