"""Quality metrics of a synthetic set: FD/KID against references, diversity, the job end to end
(on the shared phantom fold and its synthetic set, tests/conftest.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from scipy.linalg import sqrtm
from scipy.ndimage import gaussian_filter
from torch_fidelity import feature_extractor_inceptionv3 as fidelity_inception
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.kid import KernelInceptionDistance
from torchvision.models import get_model
from torchvision.models.feature_extraction import create_feature_extractor

from meddap.cls.features import penultimate_features
from meddap.cls.models import load_classifier
from meddap.common.errors import MeddapError
from meddap.common.images import load_images
from meddap.common.settings import Quality
from meddap.synth import quality
from meddap.synth.quality import (
    frechet_distance,
    inception_fid_kid,
    inception_weights,
    kernel_inception_distance,
    ms_ssim_diversity,
    ms_ssim_scales,
    quality_job,
)
from tests.conftest import PhantomFold

SETTINGS = {
    "feature_model": "squeezenet1_1",
    "image_size": 32,
    "inception_weights": None,
    "diversity_pairs": 10,
}


def smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """Independent blurred-noise images, uint8 (n, size, size)."""
    noise = np.random.default_rng(seed).normal(size=(n, size, size))
    return np.clip(128 + 600 * gaussian_filter(noise, sigma=(0, 2, 2)), 0, 255).astype(np.uint8)


def reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's sqrtm (pytorch-fid's computation)."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mean = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(mean + np.trace(ca) + np.trace(cb) - 2 * np.trace(sqrtm(ca @ cb)).real)


# --- Fréchet distance ---------------------------------------------------------------------


def test_frechet_distance_zero_for_identical_sets() -> None:
    a = np.random.default_rng(0).normal(size=(30, 64))  # N < D: rank-deficient covariance
    assert abs(frechet_distance(a, a)) < 1e-9 * np.trace(np.cov(a, rowvar=False))
    assert abs(frechet_distance(a, a[::-1])) < 1e-9 * np.trace(np.cov(a, rowvar=False))


def test_frechet_distance_closed_forms_of_shift_and_scale() -> None:
    a = np.random.default_rng(1).normal(size=(50, 8)) @ np.diag(np.arange(1, 9.0))
    shift = np.linspace(-2, 3, 8)
    assert frechet_distance(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-9)
    # b = 3 a + shift: covariance 9 S, so tr(S + 9 S - 2 * 3 S) = 4 tr(S)
    expected = np.sum((2 * a.mean(0) + shift) ** 2) + 4 * np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, 3 * a + shift) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_two_gaussians_approaches_the_population_value() -> None:
    rng = np.random.default_rng(2)
    sd_b, mean_b = np.array([1.0, 2.0, 0.5]), np.array([1.0, -1.0, 0.5])
    a = rng.normal(size=(200_000, 3))
    b = mean_b + sd_b * rng.normal(size=(200_000, 3))
    population = np.sum(mean_b**2) + np.sum((1 - sd_b) ** 2)  # 3.25
    assert frechet_distance(a, b) == pytest.approx(population, abs=0.02)


@pytest.mark.parametrize("n", [12, 300])  # fewer and more samples than dimensions
def test_frechet_distance_equals_the_sqrtm_formula(n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 40)), 0.3 + rng.gamma(2.0, size=(n + 5, 40))
    assert frechet_distance(a, b) == pytest.approx(reference_fd(a, b), rel=1e-6)


# --- KID ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_equals_torchmetrics_fed_the_same_features() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 16)), rng.normal(0.5, 1.2, size=(35, 16))
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=7, subset_size=20)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    torch.manual_seed(99)  # torchmetrics draws its subsets from the global generator
    expected = [float(x) for x in metric.compute()]
    assert kernel_inception_distance(a, b, 7, 20, seed=99) == pytest.approx(expected, rel=1e-12)


def test_kid_near_zero_for_one_distribution_and_larger_when_shifted() -> None:
    rng = np.random.default_rng(4)
    a, same, shifted = (rng.normal(size=(300, 32)) for _ in range(3))
    near, spread = kernel_inception_distance(a, same, 20, 200, seed=0)
    far, _ = kernel_inception_distance(a, shifted + 1.0, 20, 200, seed=0)
    assert abs(near) < 3 * spread + 1e-3
    assert far > 10 * abs(near) and far > 0.5
    assert kernel_inception_distance(a, same, 20, 200, seed=0) == (near, spread)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(a, same, 2, 301, seed=0)


# --- MS-SSIM diversity --------------------------------------------------------------------


@pytest.mark.parametrize(("size", "scales"), [(16, 2), (43, 2), (44, 3), (64, 3), (175, 4)])
def test_ms_ssim_scales_fit_torchmetrics(size: int, scales: int) -> None:
    assert ms_ssim_scales(size) == scales
    image = smooth_images(1, size, seed=size)[0]
    noisy = np.clip(image + np.random.default_rng(size).normal(0, 20, image.shape), 0, 255)
    assert ms_ssim_diversity(np.stack([image, image]), 1, 0) == pytest.approx(1.0)
    assert 0 < ms_ssim_diversity(np.stack([image, noisy.astype(np.uint8)]), 1, 0) < 0.999


def test_ms_ssim_scales_reject_tiny_images_and_use_all_five_from_176() -> None:
    assert ms_ssim_scales(176) == 5
    with pytest.raises(ValueError, match="too small"):
        ms_ssim_scales(10)


def test_diversity_is_lower_for_varied_images_than_near_duplicates() -> None:
    varied = smooth_images(12, 64, seed=5)
    noise = np.random.default_rng(6).normal(0, 4, size=(12, 64, 64))
    near = np.clip(varied[0] + noise, 0, 255).astype(np.uint8)
    assert ms_ssim_diversity(varied, 30, seed=1) < ms_ssim_diversity(near, 30, seed=1) - 0.3


def test_diversity_averages_all_pairs_when_there_are_few() -> None:
    images = smooth_images(5, 64, seed=7)
    x = torch.from_numpy(images).float()[:, None]
    first, second = np.triu_indices(5, k=1)
    betas = tuple(b / sum(quality.BETAS[:3]) for b in quality.BETAS[:3])
    direct = multiscale_structural_similarity_index_measure(
        x[first], x[second], data_range=255.0, betas=betas, reduction="none"
    )
    assert ms_ssim_diversity(images, 1000, seed=0) == pytest.approx(float(direct.mean()))
    sampled = [ms_ssim_diversity(images, 4, seed=s) for s in (0, 0, 1)]
    assert sampled[0] == sampled[1] != sampled[2]


# --- Inception: weights lookup, unavailable path, plumbing with a random stand-in ----------


def test_inception_weights_prefers_config_then_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert inception_weights(None) is None
    cached = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert inception_weights(None) == cached
    assert inception_weights(str(tmp_path / "mine.pth")) == tmp_path / "mine.pth"


def test_missing_weights_give_unavailable_never_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    images = smooth_images(4, 32, seed=8)
    missing = tmp_path / "inception.pth"
    result = inception_fid_kid(images, images, missing)
    assert {result[k] for k in quality.INCEPTION_KEYS} == {"unavailable"}
    assert not any(isinstance(value, float) for value in result.values())
    assert str(missing) in result["reason"]
    result = inception_fid_kid(images, images, inception_weights(None))
    assert result["fid_inception"] == "unavailable"
    assert str(tmp_path / "hub" / "checkpoints") in result["reason"]


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised torch-fidelity Inception saved like the real weights file.

    Only to exercise the code path in tests; its numbers mean nothing and are never reported.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fidelity_inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(
            fidelity_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *_: None
        )
        torch.manual_seed(0)
        net = fidelity_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)  # activations neither vanish nor explode
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def small_inception(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inception at its 75-px minimum input, on one thread that flushes denormal floats.

    The random stand-in produces denormals; with them a forward pass is 20x slower on CPU.
    """
    monkeypatch.setattr(NoTrainInceptionV3, "INPUT_IMAGE_SIZE", 75)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("small_inception")
def test_inception_fid_matches_torchmetrics_given_a_weights_file(random_inception: Path) -> None:
    images = smooth_images(6, 48, seed=9)
    real, fake = images[:3], images[3:]
    result = inception_fid_kid(real, fake, random_inception, seed=5)
    metric = FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=str(random_inception)
    )
    metric.update(torch.from_numpy(real)[:, None].expand(-1, 3, -1, -1), real=True)
    metric.update(torch.from_numpy(fake)[:, None].expand(-1, 3, -1, -1), real=False)
    assert result["fid_inception"] == pytest.approx(float(metric.compute()), rel=1e-4)
    assert result["fid_inception"] > 0
    assert math.isfinite(result["kid_inception_mean"]) and result["kid_inception_std"] >= 0
    assert result["inception_weights"] == str(random_inception)


def test_a_file_that_is_not_inception_weights_stops_with_its_name(tmp_path: Path) -> None:
    bogus = tmp_path / "weights.pth"
    bogus.write_text("not a checkpoint")
    images = smooth_images(2, 16, seed=10)
    with pytest.raises(MeddapError, match=str(bogus)):
        inception_fid_kid(images, images, bogus)


# --- Classifier features -----------------------------------------------------------------


def save_random_classifier(name: str, path: Path, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = get_model(name, weights=None, num_classes=3)
    save_file(model.state_dict(), str(path))
    return model.eval()


def test_penultimate_features_are_what_the_head_reads(tmp_path: Path) -> None:
    model = save_random_classifier("resnet34", tmp_path / "model.safetensors")
    loaded = load_classifier("resnet34", str(tmp_path / "model.safetensors"))
    images = torch.from_numpy(smooth_images(5, 32, seed=11))[:, None]
    features = penultimate_features(loaded, "resnet34", images, batch_size=2)
    x = quality_input(images)
    with torch.no_grad():
        pooled = create_feature_extractor(model, {"flatten": "f"})(x)["f"]
        logits = model(x)
    assert features.shape == (5, 512)
    np.testing.assert_allclose(features, pooled.double().numpy(), rtol=1e-4, atol=1e-5)
    head = torch.from_numpy(features).float() @ model.fc.weight.T + model.fc.bias
    np.testing.assert_allclose(head.detach().numpy(), logits.numpy(), rtol=1e-4, atol=1e-5)
    assert isinstance(loaded.fc, torch.nn.Linear)  # the model itself keeps its head


def quality_input(images: torch.Tensor) -> torch.Tensor:
    """Training preprocessing written out: [0, 1], 3 channels, ImageNet mean and std."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (images.float().div(255).expand(-1, 3, -1, -1) - mean) / std


@pytest.mark.parametrize(("name", "dim"), [("squeezenet1_1", 512), ("densenet121", 1024)])
def test_penultimate_features_dimensions(name: str, dim: int) -> None:
    torch.manual_seed(0)
    images = torch.from_numpy(smooth_images(3, 32, seed=12))[:, None]
    assert penultimate_features(get_model(name, num_classes=3), name, images).shape == (3, dim)


def test_features_reject_bad_input(tmp_path: Path) -> None:
    save_random_classifier("squeezenet1_1", tmp_path / "sq.safetensors")
    with pytest.raises(MeddapError, match="do not fit model resnet34"):
        load_classifier("resnet34", str(tmp_path / "sq.safetensors"))
    with pytest.raises(MeddapError, match="missing.safetensors"):
        load_classifier("resnet34", str(tmp_path / "missing.safetensors"))
    model = load_classifier("squeezenet1_1", str(tmp_path / "sq.safetensors"))
    with pytest.raises(ValueError, match="uint8"):
        penultimate_features(model, "squeezenet1_1", torch.zeros(2, 1, 32, 32))
    with pytest.raises(MeddapError, match="vgg16"):
        penultimate_features(model, "vgg16", torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


# --- The job -----------------------------------------------------------------------------


@pytest.fixture
def job_inputs(phantom_fold: PhantomFold, synthetic_set: Path, tmp_path: Path) -> dict[str, str]:
    """The phantom fold (fold 0: 26 train images), its synthetic set (26), a random squeezenet."""
    save_random_classifier("squeezenet1_1", tmp_path / "model.safetensors")
    return {
        "manifest": str(phantom_fold.manifest),
        "splits": str(phantom_fold.splits),
        "synth_manifest": str(synthetic_set),
        "real_model": str(tmp_path / "model.safetensors"),
    }


def test_quality_job_end_to_end_and_deterministic(
    job_inputs: dict[str, str], phantom_fold: PhantomFold, tmp_path: Path
) -> None:
    missing = tmp_path / "no-inception.pth"
    settings = Quality.from_params({**SETTINGS, "inception_weights": str(missing)})
    outputs = [tmp_path / "q1.json", tmp_path / "q2.json"]
    for out in outputs:
        quality_job(**job_inputs, record=str(out), fold=0, quality=settings, seed=3)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    record = json.loads(outputs[0].read_text())
    train = list(phantom_fold.rows("train").image_path)  # by id, as the job reads them
    n_fake = len(pd.read_parquet(job_inputs["synth_manifest"]))
    assert (record["n_real"], record["n_fake"], record["fold"]) == (len(train), n_fake, 0)
    assert record["fid_inception"] == record["kid_inception_mean"] == "unavailable"
    assert str(missing) in record["inception_unavailable_reason"]
    for key in ("fd_squeezenet1_1_real_only", "kid_squeezenet1_1_real_only_mean"):
        assert isinstance(record[key], float) and math.isfinite(record[key])
    model = load_classifier("squeezenet1_1", job_inputs["real_model"])
    fake = sorted(pd.read_parquet(job_inputs["synth_manifest"]).image_path)
    a, b = (penultimate_features(model, "squeezenet1_1", load_images(p, 32)) for p in (train, fake))
    assert record["fd_squeezenet1_1_real_only"] == pytest.approx(frechet_distance(a, b))
    assert record["fd_squeezenet1_1_real_only"] > 0
    assert 0 < record["ms_ssim_diversity"] < 1
    assert (record["ms_ssim_pairs"], record["ms_ssim_scales"], record["kid_subset_size"]) == (
        10,
        2,
        min(len(train), n_fake),
    )


@pytest.mark.usefixtures("small_inception")
def test_quality_job_records_the_inception_file_it_used(
    job_inputs: dict[str, str], random_inception: Path, tmp_path: Path
) -> None:
    settings = {**SETTINGS, "feature_model": "resnet34", "inception_weights": str(random_inception)}
    save_random_classifier("resnet34", tmp_path / "resnet34.safetensors")
    inputs = {**job_inputs, "real_model": str(tmp_path / "resnet34.safetensors")}
    out = tmp_path / "q.json"
    quality_job(**inputs, record=str(out), fold=0, quality=Quality.from_params(settings), seed=3)
    record = json.loads(out.read_text())
    assert record["inception_weights"] == str(random_inception)
    assert "inception_unavailable_reason" not in record
    for key in ("fid_inception", "kid_inception_mean", "fd_resnet34_real_only"):
        assert isinstance(record[key], float) and math.isfinite(record[key])


def test_quality_job_stops_on_bad_input(job_inputs: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "q.json"
    settings = Quality.from_params(SETTINGS)
    with pytest.raises(MeddapError, match="other than 1"):  # the synthetic set is fold 0's
        quality_job(**job_inputs, record=str(out), fold=1, quality=settings, seed=0)
    assert not out.exists()
    partial = {k: v for k, v in SETTINGS.items() if k != "diversity_pairs"}
    with pytest.raises(MeddapError, match="quality.diversity_pairs"):
        Quality.from_params(partial)  # what the job bridge builds from the rule's param
