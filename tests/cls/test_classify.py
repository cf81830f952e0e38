"""Downstream classifiers on phantom data: trainsets, models, selection on val, determinism."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, safe_open
from torchvision.models import get_model

from meddap.cls import train as classify
from meddap.cls.models import build_model
from meddap.cls.train import ClassifierTask, train_classifier
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.labels import CLASSES
from meddap.common.settings import Augment, Classifier
from meddap.data.ingest import build_manifest
from meddap.data.phantom import generate_phantom
from meddap.run.jobs import typed_params
from meddap.trainsets import CLASSIFIER, Real, TextSet, parse
from meddap.trainsets.text import synthetic_prefix
from tests.conftest import PHANTOM, PhantomFold, killed_after

SETTINGS = {
    "image_size": 32,
    "training": {"steps": 6, "eval_every": 3, "warmup": 1, "patience": None},
    "batch_size": 16,
    "learning_rate": 1e-3,
    "balance": "sampling",
    "pretrained": "none",
    "augment": {"hflip": True, "rotation": 10.0, "crop": 0.8, "jitter": 0.1},
    "device": "cpu",
    "mixed_precision": "no",
    "models": ["squeezenet1_1"],  # a grid axis: the rule's, not this job's
}


VALIDATIONS = 2  # SETTINGS' training: 6 updates, validated every 3
ONE_UPDATE = {"training": {"steps": 1, "eval_every": 1, "warmup": 0, "patience": None}}


def _phantom(root: Path, dataset: str, patients: int, seed: int, **shift: float) -> Path:
    generate_phantom(root / dataset, patients=patients, seed=seed, shift=shift or None, **PHANTOM)
    path = root / f"{dataset}.parquet"
    build_manifest(root / dataset, dataset, "busi", root / f"{dataset}_masks").to_parquet(path)
    return path


@pytest.fixture(scope="module")
def data(
    phantom_fold: PhantomFold, synthetic_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The shared phantom fold and its synthetic set, and a small shifted phantom as external."""
    root = tmp_path_factory.mktemp("classify")
    external = _phantom(root, "phantom_b", patients=6, seed=1, gain=1.3, speckle=1.5)
    return {
        "manifest": phantom_fold.manifest,
        "splits": phantom_fold.splits,
        "external": external,
        "synthetic": synthetic_set,
    }


def _train(data: dict[str, Path], out: Path, **job: object) -> dict:
    """Run the job into `out` (squeezenet1_1, fold 0, real, seed 0 unless given)."""
    settings = Classifier.from_config({"classifier": {**SETTINGS, **job.pop("settings", {})}})
    kwargs = {"fold": 0, "model": "squeezenet1_1", "trainset": "real", "seed": 0, **job}
    train_classifier(
        manifest=str(data["manifest"]),
        splits=str(data["splits"]),
        synthetic=kwargs.pop("synthetic", []),
        external=kwargs.pop("external", [str(data["external"])]),
        weights=str(out / "model.safetensors"),
        predictions=str(out / "predictions.parquet"),
        metrics=str(out / "metrics.json"),
        classifier=settings,
        **kwargs,
    )
    return json.loads((out / "metrics.json").read_text())


def _spy(monkeypatch: pytest.MonkeyPatch, events: list) -> None:
    """Record every pass over the training data (its size) and every prediction (its images)."""
    indices, predict = ClassifierTask.indices, classify.predict

    def train_spy(task: ClassifierTask, order: torch.Generator) -> list[torch.Tensor]:
        events.append(("train", len(task.train.targets)))
        return indices(task, order)

    def predict_spy(model: torch.nn.Module, pixels: torch.Tensor, batch_size: int) -> np.ndarray:
        events.append(("predict", pixels))
        return predict(model, pixels, batch_size)

    monkeypatch.setattr(ClassifierTask, "indices", train_spy)
    monkeypatch.setattr(classify, "predict", predict_spy)


@pytest.fixture(scope="module")
def real_run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out, events = tmp_path_factory.mktemp("real"), []
    with pytest.MonkeyPatch.context() as monkeypatch:
        _spy(monkeypatch, events)
        metrics = _train(data, out)
    return {"out": out, "metrics": metrics, "events": events}


def _split_images(data: dict[str, Path], split: str) -> tuple[pd.DataFrame, torch.Tensor]:
    table = pd.read_parquet(data["splits"])
    ids = sorted(table[(table.fold == 0) & (table.split == split)].id)
    rows = pd.read_parquet(data["manifest"]).set_index("id").loc[ids].reset_index()
    return rows, load_images(list(rows.image_path), SETTINGS["image_size"])


def test_outputs_of_a_real_run(real_run: dict, data: dict[str, Path]) -> None:
    preds = pd.read_parquet(real_run["out"] / "predictions.parquet")
    probs = [f"prob_{c}" for c in CLASSES]
    assert list(preds.columns) == ["id", "split", "label", *probs, "prediction"]
    assert set(preds.split) == {"val", "test", "external:phantom_b"}
    for split in ("val", "test"):
        assert list(preds[preds.split == split].id) == list(_split_images(data, split)[0].id)
    assert len(preds[preds.split == "external:phantom_b"]) == len(pd.read_parquet(data["external"]))
    np.testing.assert_allclose(preds[probs].sum(axis=1), 1.0)
    assert (preds.prediction == [CLASSES[k] for k in preds[probs].to_numpy().argmax(1)]).all()
    metrics = real_run["metrics"]
    n_train = len(_split_images(data, "train")[0])
    assert (metrics["n_train_real"], metrics["n_train_synthetic"]) == (n_train, 0)
    assert metrics["pretrained_used"] == "none"
    assert metrics["test"]["confusion_matrix"] and len(metrics["history"]) == VALIDATIONS
    assert 0 <= metrics["test"]["balanced_accuracy"] <= 1 and metrics["balance"] == "sampling"
    assert (metrics["updates"], metrics["budget"]["steps"]) == (6, 6)
    external = metrics["external"]["phantom_b"]
    assert external["classes"] == ["benign", "malignant"] and "normal" in external["rule"]
    with safe_open(real_run["out"] / "model.safetensors", "pt") as weights:
        meta = json.loads(weights.metadata()["meddap"])
    assert meta["best_update"] == metrics["best_update"] and meta["classes"] == list(CLASSES)
    assert (meta["model"], meta["image_size"]) == ("squeezenet1_1", SETTINGS["image_size"])


def test_test_images_are_predicted_once_after_training(real_run: dict, data: dict) -> None:
    events = real_run["events"]
    test_pixels = _split_images(data, "test")[1]
    val_pixels = _split_images(data, "val")[1]
    on_test = [
        i for i, (kind, x) in enumerate(events) if kind == "predict" and _same(x, test_pixels)
    ]
    on_val = [i for i, (kind, x) in enumerate(events) if kind == "predict" and _same(x, val_pixels)]
    last_pass = max(i for i, (kind, _) in enumerate(events) if kind == "train")
    assert len(on_test) == 1 and on_test[0] > last_pass
    assert len(on_val) == VALIDATIONS and max(on_val) < on_test[0]


def _same(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.shape == y.shape and torch.equal(x, y)


def test_kept_checkpoint_is_the_best_val_update(real_run: dict, data: dict[str, Path]) -> None:
    metrics, history = real_run["metrics"], real_run["metrics"]["history"]
    best = max(history, key=lambda h: (h["val_accuracy"], -h["val_loss"], -h["update"]))
    assert metrics["best_update"] == best["update"]
    assert metrics["val"]["accuracy"] == pytest.approx(best["val_accuracy"])
    model = build_model("squeezenet1_1", len(CLASSES), "none")
    model.load_state_dict(load_file(real_run["out"] / "model.safetensors"))
    preds = pd.read_parquet(real_run["out"] / "predictions.parquet")
    for split in ("val", "test"):
        again = classify.predict(model, _split_images(data, split)[1], 8)
        saved = preds[preds.split == split][[f"prob_{c}" for c in CLASSES]].to_numpy()
        np.testing.assert_allclose(again, saved, atol=1e-6)


def test_same_seed_same_bytes(real_run: dict, data: dict[str, Path], tmp_path: Path) -> None:
    _train(data, tmp_path / "again")
    first = (real_run["out"] / "model.safetensors").read_bytes()
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == first
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "again" / "predictions.parquet"),
        pd.read_parquet(real_run["out"] / "predictions.parquet"),
    )
    _train(data, tmp_path / "other", seed=1, settings=ONE_UPDATE, external=[])
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != first


OUTPUTS = ("model.safetensors", "predictions.parquet", "metrics.json")


def _train_until_killed(data: dict[str, Path], out: Path, validations: int, **job: object) -> None:
    """Run the job into `out` and kill it after `validations` validations."""
    with killed_after(validations):
        _train(data, out, **job)
    assert (out / "checkpoint.pt").is_file()
    assert not [name for name in OUTPUTS if (out / name).exists()]


def _assert_same_outputs(out: Path, reference: Path) -> None:
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / "checkpoint.pt").exists()


def test_resumed_run_has_the_bytes_of_an_uninterrupted_one(
    real_run: dict, data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _train_until_killed(data, tmp_path, validations=1)
    with caplog.at_level("INFO"):
        _train(data, tmp_path)
    assert "checkpoint.pt (update 3)" in caplog.text
    _assert_same_outputs(tmp_path, real_run["out"])


def test_checkpoint_of_other_settings_is_discarded(
    real_run: dict, data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _train_until_killed(data, tmp_path, validations=1, settings={"learning_rate": 1e-2})
    with caplog.at_level("INFO"):
        _train(data, tmp_path)
    assert "discarding" in caplog.text and "resumed" not in caplog.text
    _assert_same_outputs(tmp_path, real_run["out"])


def test_a_larger_training_set_gets_the_same_updates(
    real_run: dict, data: dict[str, Path], tmp_path: Path
) -> None:
    job = {"external": [], "synthetic": str(data["synthetic"])}
    metrics = _train(data, tmp_path, trainset="r2-none-100", **job)
    real = real_run["metrics"]
    assert metrics["n_train_synthetic"] == real["n_train_real"]  # twice the images
    assert metrics["updates"] == real["updates"] == SETTINGS["training"]["steps"]
    assert [h["update"] for h in metrics["history"]] == [h["update"] for h in real["history"]]


def test_synthetic_rows_join_the_training_set(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list = []
    _spy(monkeypatch, events)
    synthetic = str(data["synthetic"])  # Snakemake passes a single input as a plain path
    job = {"settings": ONE_UPDATE, "external": [], "synthetic": synthetic}
    metrics = _train(data, tmp_path, trainset="r2-none-50", **job)
    n_real = len(_split_images(data, "train")[0])
    assert metrics["n_train_real"] == n_real
    assert metrics["n_train_synthetic"] == math.ceil(n_real / 2)
    assert [size for kind, size in events if kind == "train"] == [n_real + math.ceil(n_real / 2)]


def test_a_mask_conditioned_set_adds_its_segmenters_pairs(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list = []
    _spy(monkeypatch, events)
    train = _split_images(data, "train")[0]
    lesions = int((train.label != "normal").sum())
    images = pd.read_parquet(data["synthetic"]).image_path.tolist()
    n = 3 * lesions  # a pool of 3 pairs per train lesion, of which 1:2 takes the first 2 x
    pool = pd.DataFrame({"id": [f"m{i}" for i in range(n)], "index": range(n), "fold": 0})
    pool = pool.assign(
        setting="mask-real", label=["benign", "malignant"] * (n // 2) + ["benign"] * (n % 2)
    )
    pool = pool.assign(image_path=[images[i % len(images)] for i in range(n)], mask_path="m.png")
    pool.to_parquet(tmp_path / "pool.parquet")
    job = {"settings": ONE_UPDATE, "external": [], "synthetic": str(tmp_path / "pool.parquet")}
    metrics = _train(data, tmp_path / "out", trainset="mask-real-1to2", **job)
    assert (metrics["n_train_real"], metrics["n_train_synthetic"]) == (len(train), 2 * lesions)
    assert [size for kind, size in events if kind == "train"] == [len(train) + 2 * lesions]
    for trainset, message in [
        ("mask-real-0to1", "no normal image"),
        ("mask-real-1to1-mix0.5p4", "segmenters only"),
    ]:
        with pytest.raises(MeddapError, match=message):
            _train(data, tmp_path / trainset, trainset=trainset, **job)


def test_trainset_and_synthetic_manifests_must_agree(data: dict[str, Path], tmp_path: Path) -> None:
    synthetic = [str(data["synthetic"])]
    with pytest.raises(MeddapError, match="needs 0 synthetic manifest"):
        _train(data, tmp_path, synthetic=synthetic)
    with pytest.raises(MeddapError, match="needs 1 synthetic manifest"):
        _train(data, tmp_path, trainset="r2-none-50")
    with pytest.raises(MeddapError, match="needs rank 4"):
        _train(data, tmp_path, trainset="r4-none-50", synthetic=synthetic)
    with pytest.raises(MeddapError, match="without gaps"):
        _train(data, tmp_path, trainset="r2-none-200", synthetic=synthetic)
    assert not list(tmp_path.iterdir())


def test_external_manifests_are_checked_before_training(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list = []
    _spy(monkeypatch, events)
    external = pd.read_parquet(data["external"])
    external.drop(columns="dataset").to_parquet(tmp_path / "nameless.parquet")
    external[external.label == "normal"].to_parquet(tmp_path / "normal.parquet")
    for name, message in [
        ("nameless", "exactly one dataset"),
        ("normal", "no benign or malignant image"),
    ]:
        with pytest.raises(MeddapError, match=message):
            _train(data, tmp_path / "out", external=[str(tmp_path / f"{name}.parquet")])
    with pytest.raises(MeddapError, match="same dataset twice"):
        _train(data, tmp_path / "out", external=[str(data["external"])] * 2)
    assert not events and not (tmp_path / "out").exists()


def test_the_job_gets_the_classifier_section_as_settings() -> None:
    params = Classifier.from_config({"classifier": SETTINGS}).params()
    assert "models" not in params  # the grid axis stays with the rule
    typed = typed_params(train_classifier, {"classifier": params, "fold": 0})
    assert typed["classifier"].augment.rotation == 10.0 and typed["fold"] == 0
    with pytest.raises(MeddapError, match=r"classifier\.augment\.rotation is missing"):
        typed_params(train_classifier, {"classifier": {**params, "augment": {"hflip": True}}})
    with pytest.raises(MeddapError, match=r"classifier\.models is unknown"):
        typed_params(train_classifier, {"classifier": SETTINGS})
    older = {k: v for k, v in params.items() if k != "mixed_precision"}
    with pytest.raises(MeddapError, match=r"classifier\.mixed_precision is missing"):
        typed_params(train_classifier, {"classifier": older})


def test_bad_device_or_precision_is_named(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match=r"classifier\.device"):
        _train(data, tmp_path, settings={"device": "tpu"})
    with pytest.raises(MeddapError, match=r"classifier\.mixed_precision: 'fp8'"):
        _train(data, tmp_path, settings={"mixed_precision": "fp8"})
    with pytest.raises(MeddapError, match=r"classifier\.mixed_precision: fp16 needs a CUDA GPU"):
        _train(data, tmp_path, settings={"mixed_precision": "fp16"})  # device is cpu
    no_update = {"steps": 0, "eval_every": 1, "warmup": 0, "patience": None}
    with pytest.raises(MeddapError, match=r"classifier\.training\.steps must be at least 1"):
        _train(data, tmp_path, settings={"training": no_update})
    with pytest.raises(MeddapError, match=r"classifier\.balance: 'oversample' is not one of"):
        _train(data, tmp_path, settings={"balance": "oversample"})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["densenet121", "resnet18", "resnet34", "squeezenet1_1"])
def test_models_have_three_class_heads(name: str) -> None:
    model = build_model(name, 3, "none").eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_imagenet_weights_come_only_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MeddapError, match=r"classifier\.pretrained.*squeezenet1_1-b8a52dc0\.pth"):
        build_model("squeezenet1_1", 3, "imagenet")
    torch.manual_seed(5)
    imagenet = get_model("squeezenet1_1")  # stands in for the cached ImageNet file
    (tmp_path / "checkpoints").mkdir()
    torch.save(imagenet.state_dict(), tmp_path / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    model = build_model("squeezenet1_1", 3, "imagenet")
    assert torch.equal(model.features[0].weight, imagenet.features[0].weight)
    assert model.classifier[1].out_channels == 3


def test_unknown_model_or_weights_are_refused() -> None:
    with pytest.raises(MeddapError, match=r"classifier\.models"):
        build_model("vgg16", 3, "none")
    with pytest.raises(MeddapError, match=r"classifier\.pretrained"):
        build_model("resnet34", 3, "laion")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_text("not a png")
    with pytest.raises(MeddapError, match="broken.png"):
        load_images([str(tmp_path / "broken.png")], 32)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("real", Real()),
        ("r4-high-contrast-100", TextSet(4, "high-contrast", 100)),
        ("r2-none-50", TextSet(2, "none", 50)),
        ("r0-bright-100", TextSet(0, "bright", 100)),  # the base model without LoRA
    ],
)
def test_parse_trainset(name: str, parsed: object) -> None:
    assert parse(name) == parsed and parse(name).name == name


@pytest.mark.parametrize(
    "name",
    ["", "Real", "r00-none-50", "r4-High-50", "r4--50", "4-none-50", "r4-none-", "r4-none-5x"],
)
def test_parse_trainset_refuses_bad_names(name: str) -> None:
    with pytest.raises(MeddapError, match="r\\{rank\\}-\\{adjective\\}-\\{ratio\\}"):
        parse(name)


def test_prefixes_are_nested_and_sized_by_ratio() -> None:
    table = pd.DataFrame({"index": range(30), "id": [f"s{i}" for i in range(30)]})
    table = table.assign(label="benign", image_path="x.png").sample(frac=1, random_state=1)
    half, full, double = (synthetic_prefix(table, 11, r) for r in (50, 100, 200))
    assert (len(half), len(full), len(double)) == (6, 11, 22)
    assert list(half.id) == list(full.id[:6]) and list(full.id) == list(double.id[:11])
    assert list(double["index"]) == list(range(22))
    with pytest.raises(MeddapError, match="indices 0..32"):
        synthetic_prefix(table, 11, 300)
    with pytest.raises(MeddapError, match="without gaps"):
        synthetic_prefix(table[table["index"] != 3], 11, 50)


TRAIN_10 = pd.DataFrame({"label": ["benign"] * 10})  # ten real train images


def test_load_synthetic_checks_the_fold(data: dict[str, Path]) -> None:
    with pytest.raises(MeddapError, match="needs fold 1"):
        parse("r2-none-50").rows(str(data["synthetic"]), 1, TRAIN_10, CLASSIFIER)
    assert len(parse("r2-none-50").rows(str(data["synthetic"]), 0, TRAIN_10, CLASSIFIER)) == 5


def test_crop_and_jitter_keep_the_size_and_change_the_pixels() -> None:
    augment = Augment(hflip=False, rotation=0.0, crop=0.5, jitter=0.3)
    transform = classify._augmenter(augment, 32)
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8)
    out = transform(image)
    assert out.shape == image.shape and out.dtype == torch.uint8
    assert not torch.equal(out, image)
    assert classify._augmenter(Augment(False, 0.0, 1.0, 0.0), 32) is None  # every step off


@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet18"])
def test_a_channels_last_classifier_computes_what_the_plain_one_does(name: str) -> None:
    torch.manual_seed(0)
    built = build_model(name, len(CLASSES), "none").eval()
    plain = get_model(name, weights=None, num_classes=len(CLASSES)).eval()
    plain.load_state_dict({k: v.contiguous() for k, v in built.state_dict().items()})
    weight = next(p for p in built.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    images = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(built(images), plain(images), rtol=1e-4, atol=1e-5)
