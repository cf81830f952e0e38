"""Image quality of a synthetic set against its fold's real train images.

Three families of numbers, each named for what it measures:

* `fid_inception`, `kid_inception_mean|std`: FID and KID with the Inception network torchmetrics'
  `FrechetInceptionDistance(feature=2048)` uses (torch-fidelity's port of the TF-slim weights),
  given a local weights file. Nothing is downloaded; without the file they read "unavailable"
  with the reason. Random Inception weights are never used for a reported number.
* `fd_<model>_real_only`, `kid_<model>_real_only_mean|std`: the same two distances in the
  penultimate-layer features of the fold's real-only classifier
  (`meddap.cls.features`), always there.
* `ms_ssim_diversity`: mean MS-SSIM over a seeded sample of pairs of synthetic images (lower =
  more diverse).

The Fréchet distance uses the exact identity tr((S_a S_b)^1/2) = ||A B^T||_* (nuclear norm) for
sample covariances S = A^T A of centred samples A, with a tall A first reduced to its R factor
(R^T R = A^T A): exact for the rank-deficient covariances of small sets and fast (0.3 s for 500
images at D=2048 on 2 cores, where scipy's `sqrtm` of S_a S_b takes 64 s); tested against sqrtm.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure
from torchmetrics.image.fid import NoTrainInceptionV3
from torchmetrics.image.kid import poly_mmd

from meddap.cls.features import penultimate_features
from meddap.cls.models import load_classifier
from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.images import load_gray, load_images
from meddap.common.seeds import derive_seed
from meddap.common.settings import Quality
from meddap.common.splits import read_table, split_rows

UNAVAILABLE = "unavailable"
INCEPTION_FILE = Path(urlparse(URL_INCEPTION_V3).path).name
INCEPTION_SIZE = NoTrainInceptionV3.INPUT_IMAGE_SIZE
KID_SUBSETS = 100  # torchmetrics' default
KID_MAX_SUBSET = 1000  # torchmetrics' default subset size, capped by the set sizes
BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # MS-SSIM scale weights (Wang et al. 2003)
SIGMA, KERNEL = 1.5, 11  # Gaussian window of SSIM; sigma 1.5 gives torchmetrics an 11-px kernel
INCEPTION_KEYS = ("fid_inception", "kid_inception_mean", "kid_inception_std")


def hub_inception_path() -> Path:
    """Where torch-fidelity's Inception weights lie in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights(path: str | None) -> Path | None:
    """The configured weights file (existing or not), else the hub cache file if any, else None."""
    if path:
        return Path(path).expanduser()
    hub = hub_inception_path()
    return hub if hub.is_file() else None


def inception_fid_kid(
    real: np.ndarray, fake: np.ndarray, weights: Path | None, *, seed: int = 0
) -> dict:
    """FID and KID of uint8 grayscale (N, H, W) sets, replicated to RGB, with Inception `weights`.

    Returns `fid_inception`, `kid_inception_mean`, `kid_inception_std` and `inception_weights`;
    all three metrics are "unavailable", with a `reason`, when the weights file is missing.
    KID uses subsets of min(1000, N_real, N_fake) images; `seed` picks them.
    """
    reason = _unavailable_reason(weights)
    if reason is not None:
        return {**dict.fromkeys(INCEPTION_KEYS, UNAVAILABLE), "reason": reason}
    net = _inception(weights)
    a, b = _inception_features(net, real), _inception_features(net, fake)
    kid = kernel_inception_distance(a, b, KID_SUBSETS, kid_subset_size(len(a), len(b)), seed)
    values = [frechet_distance(a, b), *kid]
    return {**dict(zip(INCEPTION_KEYS, values, strict=True)), "inception_weights": str(weights)}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) of feature sets (N, D), N >= 2 each."""
    ca, cb = _centred(a), _centred(b)
    mean_term = np.sum((np.mean(a, axis=0) - np.mean(b, axis=0)) ** 2)
    cross = _gram_root(ca) @ _gram_root(cb).T
    return float(mean_term + np.sum(ca**2) + np.sum(cb**2) - 2 * np.linalg.norm(cross, "nuc"))


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """Mean and std over `subsets` random subsets of the unbiased MMD^2 with the cubic kernel.

    torchmetrics' `KernelInceptionDistance.compute` (its `poly_mmd`, degree 3, gamma 1/D,
    coef 1), with subsets drawn from a generator seeded with `seed` instead of the global one.
    """
    if not 2 <= subset_size <= min(len(a), len(b)):
        raise ValueError(f"subset_size {subset_size} must lie in [2, {min(len(a), len(b))}]")
    fa, fb = (torch.from_numpy(np.asarray(x, dtype=np.float64)) for x in (a, b))
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        sub_a = fa[torch.randperm(len(fa), generator=generator)[:subset_size]]
        sub_b = fb[torch.randperm(len(fb), generator=generator)[:subset_size]]
        scores.append(poly_mmd(sub_a, sub_b))
    stacked = torch.stack(scores)
    return float(stacked.mean()), float(stacked.std(correction=0))


def kid_subset_size(n_real: int, n_fake: int) -> int:
    """min(1000, N_real, N_fake): torchmetrics' default where the sets are large enough."""
    return min(KID_MAX_SUBSET, n_real, n_fake)


def ms_ssim_scales(size: int) -> int:
    """The most scales (up to 5) torchmetrics' MS-SSIM runs on `size`-px images (11-px window).

    torchmetrics requires size // (scales - 1)**2 > 10, and the coarsest scale must exceed the
    5-px reflect padding: 5 scales from 176 px, 3 at 64 px, 2 at 16 px.
    """
    for scales in range(len(BETAS), 0, -1):
        if size // max(1, scales - 1) ** 2 > KERNEL - 1 and size >> (scales - 1) > KERNEL // 2:
            return scales
    raise ValueError(f"images of {size} px are too small for MS-SSIM with a {KERNEL}-px window")


def ms_ssim_diversity(images: np.ndarray, pairs: int, seed: int) -> float:
    """Mean MS-SSIM of `pairs` distinct pairs of uint8 (N, H, W) images drawn with `seed`.

    All pairs when there are at most `pairs`. torchmetrics' MS-SSIM (Gaussian sigma 1.5,
    data range 255, negative terms clipped at 0 as `tf.image.ssim_multiscale` does, so unrelated
    images can score 0) on the first `ms_ssim_scales` scales, their weights `BETAS` renormalised
    to sum to 1 so that identical images score 1.
    """
    if images.ndim != 3 or len(images) < 2:
        raise ValueError(f"expected at least 2 images (N, H, W), got {images.shape}")
    scales = ms_ssim_scales(min(images.shape[1:]))
    betas = tuple(beta / sum(BETAS[:scales]) for beta in BETAS[:scales])
    first, second = _pairs(len(images), pairs, seed)
    pixels = torch.from_numpy(images).float()[:, None]
    values = [
        multiscale_structural_similarity_index_measure(
            pixels[first[k : k + 64]],
            pixels[second[k : k + 64]],
            sigma=SIGMA,
            kernel_size=KERNEL,
            reduction="none",
            data_range=255.0,
            betas=betas,
        )
        for k in range(0, len(first), 64)
    ]
    return float(torch.cat(values).double().mean())


def quality_job(
    *,
    manifest: str,
    splits: str,
    synth_manifest: str,
    real_model: str,
    record: str,
    fold: int,
    quality: Quality,
    seed: int,
) -> None:
    """Job: FID/KID (Inception and in-domain) and diversity of a synthetic set; write JSON."""
    real = _train_paths(manifest, splits, fold)
    fake = _synthetic_paths(synth_manifest, fold)
    write_json(set_quality(real, fake, real_model, fold, quality, seed), record)


def set_quality(
    real: list[str], fake: list[str], real_model: str, fold: int, quality: Quality, seed: int
) -> dict:
    """FID/KID (Inception and in-domain) and diversity of images `fake` against `real`."""
    name, size = quality.feature_model, quality.image_size
    fake_pixels = load_images(fake, size)
    model = load_classifier(name, real_model)
    configured = quality.inception_weights
    return {
        "fold": fold,
        "n_real": len(real),
        "n_fake": len(fake),
        "image_size": size,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": kid_subset_size(len(real), len(fake)),
        **_inception_record(
            real, fake, configured, derive_seed(seed, "quality", fold, "inception")
        ),
        **_in_domain(model, name, load_images(real, size), fake_pixels, seed, fold),
        **_diversity(fake_pixels[:, 0].numpy(), quality.diversity_pairs, seed, fold),
    }


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _unavailable_reason(weights: Path | None) -> str | None:
    """Why Inception metrics cannot be computed with `weights`, or None when they can."""
    if weights is None:
        return (
            "no Inception weights: config key quality.inception_weights is null and "
            f"{hub_inception_path()} is missing (weights are never downloaded)"
        )
    if not weights.is_file():
        return f"Inception weights {weights} (config key quality.inception_weights) are missing"
    return None


def _inception(weights: Path) -> torch.nn.Module:
    """torchmetrics' FID feature network (2048-d pool features) with the weights file."""
    try:
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=str(weights),
        )
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise MeddapError(
            f"Inception weights {weights} are not torch-fidelity's Inception ({type(err).__name__})"
        ) from err
    return net.to(_device())


def _inception_features(net: torch.nn.Module, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """2048-d features of uint8 grayscale (N, H, W) images replicated to RGB (resized to 299)."""
    device = next(net.parameters()).device
    rgb = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)
    with torch.no_grad():
        parts = [
            net(rgb[i : i + batch].to(device)).double().cpu() for i in range(0, len(rgb), batch)
        ]
    return torch.cat(parts).numpy()


def _inception_record(real: list[str], fake: list[str], configured: str | None, seed: int) -> dict:
    """Inception FID/KID of two image lists, read at 299 px (bicubic) only if the weights exist."""
    weights = inception_weights(configured)
    reason = _unavailable_reason(weights)
    if reason is not None:
        return {
            **dict.fromkeys(INCEPTION_KEYS, UNAVAILABLE),
            "inception_unavailable_reason": reason,
        }
    bicubic = Image.Resampling.BICUBIC
    images = [load_gray(paths, INCEPTION_SIZE, bicubic) for paths in (real, fake)]
    return inception_fid_kid(*images, weights, seed=seed)


def _in_domain(
    model: torch.nn.Module, name: str, real: torch.Tensor, fake: torch.Tensor, seed: int, fold: int
) -> dict:
    """Fréchet distance and KID in the penultimate features of the real-only classifier."""
    model.to(_device())
    a, b = penultimate_features(model, name, real), penultimate_features(model, name, fake)
    kid_seed = derive_seed(seed, "quality", fold, "kid", name)
    mean, std = kernel_inception_distance(
        a, b, KID_SUBSETS, kid_subset_size(len(a), len(b)), kid_seed
    )
    prefix = f"{name}_real_only"
    return {
        f"fd_{prefix}": frechet_distance(a, b),
        f"kid_{prefix}_mean": mean,
        f"kid_{prefix}_std": std,
        "feature_model": name,
    }


def _diversity(images: np.ndarray, pairs: int, seed: int, fold: int) -> dict:
    """MS-SSIM diversity of the synthetic images, with the pairs and scales it used."""
    return {
        "ms_ssim_diversity": ms_ssim_diversity(
            images, pairs, derive_seed(seed, "quality", fold, "ms_ssim")
        ),
        "ms_ssim_pairs": min(pairs, math.comb(len(images), 2)),
        "ms_ssim_scales": ms_ssim_scales(min(images.shape[1:])),
    }


def _centred(x: np.ndarray) -> np.ndarray:
    """Samples (N, D) minus their mean, over sqrt(N - 1): A with A^T A the sample covariance."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"expected features (N, D) with N >= 2, got shape {x.shape}")
    return (x - x.mean(axis=0)) / math.sqrt(len(x) - 1)


def _gram_root(x: np.ndarray) -> np.ndarray:
    """`x`, or for a tall `x` its R factor: at most D rows R with R^T R = x^T x."""
    return np.linalg.qr(x, mode="r") if len(x) > x.shape[1] else x


def _pairs(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j: all of them, or `pairs` of them drawn without replacement, sorted."""
    first, second = np.triu_indices(n, k=1)
    if pairs < len(first):
        keep = np.sort(np.random.default_rng(seed).choice(len(first), pairs, replace=False))
        first, second = first[keep], second[keep]
    return first, second


def _train_paths(manifest: str, splits: str, fold: int) -> list[str]:
    """Image paths of fold `fold`'s train split, sorted by id (the reference set)."""
    paths = split_rows(manifest, splits, fold, "train", columns=("image_path",))["image_path"]
    if len(paths) < 2:
        raise MeddapError(f"{splits} has fewer than 2 train images for fold {fold}")
    return [str(path) for path in paths]


def _synthetic_paths(path: str, fold: int) -> list[str]:
    """Every image path of the synthetic set, sorted; the set must belong to fold `fold`."""
    table = read_table(path, ["image_path"])
    if "fold" in table.columns and (table["fold"] != fold).any():
        raise MeddapError(f"{path} holds images of a fold other than {fold}")
    if len(table) < 2:
        raise MeddapError(f"{path} lists fewer than 2 synthetic images")
    return sorted(str(p) for p in table["image_path"])
