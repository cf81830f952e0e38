"""The phantom generator: BUSI layout, determinism, lesion priors, planted duplicates, shift."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from skimage.measure import label, regionprops
from skimage.metrics import structural_similarity

import meddap.data.phantom as phantom
from meddap.common.errors import MeddapError
from meddap.data.phantom import generate_phantom

DEFAULT = {
    "patients": 60,
    "image_size": 128,
    "duplicates": 8,
    "conflicting": 2,
    "second_mask_fraction": 0.1,
    "seed": 0,
}
SMALL = DEFAULT | {"patients": 8, "image_size": 64, "duplicates": 2, "conflicting": 1}
NAME = re.compile(r"(normal|benign|malignant) \((\d+)\)(_mask(_\d+)?)?\.png")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom at the default configuration values."""
    path = tmp_path_factory.mktemp("phantom") / "Dataset_BUSI_with_GT"
    generate_phantom(path, **DEFAULT)
    return path


def _images(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.png") if "_mask" not in p.name)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def _lesion(image: Path) -> np.ndarray:
    """Union of all masks of an image, as ingest reads BUSI."""
    masks = image.parent.glob(f"{image.stem}_mask*.png")
    return np.logical_or.reduce([_grey(mask) > 0 for mask in masks])


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ssim_all_pairs(stack: np.ndarray) -> np.ndarray:
    """skimage's default SSIM (7x7 uniform window, sample covariance) for every pair, vectorised."""
    x = stack.astype(np.float64)
    c1, c2, norm = (0.01 * 255) ** 2, (0.03 * 255) ** 2, 49 / 48
    mean = ndimage.uniform_filter(x, size=(1, 7, 7))
    var = norm * (ndimage.uniform_filter(x * x, size=(1, 7, 7)) - mean**2)
    scores = np.eye(len(x))
    for i in range(len(x) - 1):
        cross = ndimage.uniform_filter(x[i] * x[i + 1 :], size=(1, 7, 7))
        cov = norm * (cross - mean[i] * mean[i + 1 :])
        num = (2 * mean[i] * mean[i + 1 :] + c1) * (2 * cov + c2)
        den = (mean[i] ** 2 + mean[i + 1 :] ** 2 + c1) * (var[i] + var[i + 1 :] + c2)
        scores[i, i + 1 :] = scores[i + 1 :, i] = (num / den)[:, 3:-3, 3:-3].mean(axis=(1, 2))
    return scores


def test_layout_follows_busi(root: Path) -> None:
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["benign", "malignant", "normal"]
    for folder in ("normal", "benign", "malignant"):
        names = [NAME.fullmatch(p.name) for p in (root / folder).iterdir()]
        assert all(m and m[1] == folder for m in names)
        numbers = sorted(int(m[2]) for m in names if not m[3])
        assert numbers == list(range(1, len(numbers) + 1))
        assert {int(m[2]) for m in names if m[3] == "_mask"} == set(numbers)
    truth = pd.read_csv(root / "duplicates_truth.csv")
    resized = {
        root / i for i in truth.image[(truth.kind != "near_copy") & (truth.role != "original")]
    }
    image = Image.open(next(p for p in _images(root) if p not in resized))
    assert image.mode == "RGB" and image.size == (128, 128)
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.std() > 20


def test_masks_binary_empty_for_normal_only(root: Path) -> None:
    for mask_path in root.glob("*/*_mask*.png"):
        mask = Image.open(mask_path)
        assert mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    for image in _images(root):
        assert _lesion(image).any() == (image.parent.name != "normal")
    assert list(root.glob("*/*_mask_1.png")), "some lesions carry a second mask"


def test_same_seed_same_bytes_other_seed_differs(root: Path, tmp_path: Path) -> None:
    generate_phantom(tmp_path / "again", **DEFAULT)
    assert _digests(tmp_path / "again") == _digests(root)
    generate_phantom(tmp_path / "other", **DEFAULT | {"seed": 1})
    assert _digests(tmp_path / "other") != _digests(root)


def test_lesion_shape_priors(root: Path) -> None:
    truth = pd.read_csv(root / "duplicates_truth.csv")
    conflicting = set(truth.image[truth.role == "conflicting"])
    ratios: dict[str, list[float]] = {"benign": [], "malignant": []}
    for image in _images(root):
        name = f"{image.parent.name}/{image.name}"
        if image.parent.name == "normal" or name in conflicting:
            continue
        region = max(
            regionprops(label(_grey(image.with_name(f"{image.stem}_mask.png")))),
            key=lambda r: r.area,
        )
        top, left, bottom, right = region.bbox
        ratios[image.parent.name].append((right - left) / (bottom - top))
    assert np.mean(ratios["benign"]) > 1.4 and np.mean(ratios["malignant"]) < 0.85
    assert np.mean(np.array(ratios["benign"]) > 1) > 0.95
    assert np.mean(np.array(ratios["malignant"]) < 1) > 0.9


def test_malignant_interior_heterogeneous_with_shadow(root: Path) -> None:
    stats: dict[str, list[tuple[float, float]]] = {"benign": [], "malignant": []}
    for image in _images(root):
        if image.parent.name == "normal":
            continue
        grey, lesion = _grey(image).astype(float), _lesion(image)
        core = ndimage.binary_erosion(lesion, iterations=2)
        below = np.logical_or.accumulate(lesion, axis=0) & ~lesion
        if core.sum() > 20 and below.sum() > 20:
            stats[image.parent.name].append((grey[core].std(), grey[below].mean()))
    benign, malignant = np.array(stats["benign"]), np.array(stats["malignant"])
    assert malignant[:, 0].mean() > benign[:, 0].mean()
    assert malignant[:, 1].mean() < 0.8 * benign[:, 1].mean()


def test_planted_duplicates_separate_by_ssim(root: Path) -> None:
    images = _images(root)
    names = [f"{p.parent.name}/{p.name}" for p in images]
    stack = np.stack([np.asarray(Image.open(p).convert("L").resize((128, 128))) for p in images])
    scores = _ssim_all_pairs(stack)
    truth = pd.read_csv(root / "duplicates_truth.csv")
    group = dict(zip(truth.image, truth.group, strict=True))
    planted = np.array([[group.get(a, -1) == group.get(b, -2) for b in names] for a in names])
    pairs = np.triu(np.ones_like(planted), k=1)
    kind = dict(zip(truth.image, truth.kind, strict=True))
    crop = np.array([[kind.get(a) == "crop" for b in names] for a in names])
    neighbours = pd.read_csv(root / "neighbours_truth.csv")
    frames = {frozenset(p) for p in zip(neighbours.image, neighbours.neighbour_of, strict=True)}
    frame = np.array([[frozenset((a, b)) in frames for b in names] for a in names])
    assert planted[pairs].sum() == 8 and frame[pairs].sum() == 8
    assert scores[planted & ~crop & pairs].min() >= 0.65
    assert scores[planted & crop & pairs].max() < 0.30  # unaligned SSIM misses crops
    assert scores[frame & pairs].max() > 0.3  # neighbour frames look alike
    assert scores[~planted & ~frame & pairs].max() < 0.30
    worst = np.unravel_index(np.where(~planted & pairs, scores, -1).argmax(), scores.shape)
    for i, j in [*zip(*np.nonzero(planted & pairs), strict=True), worst]:
        reference = structural_similarity(stack[i], stack[j], data_range=255)
        assert scores[i, j] == pytest.approx(reference, abs=1e-9)


def test_duplicate_truth_table(root: Path) -> None:
    truth = pd.read_csv(root / "duplicates_truth.csv")
    assert list(truth.columns) == ["group", "image", "label", "role", "kind"]
    assert truth.role.value_counts().to_dict() == {"original": 8, "duplicate": 6, "conflicting": 2}
    assert truth.groupby("group").kind.first().tolist() == [*phantom.COPY_KINDS * 3][:8]
    for _, members in truth.groupby("group"):
        original = members[members.role == "original"].iloc[0]
        for _, copy in members[members.role != "original"].iterrows():
            assert (copy.label != original.label) == (copy.role == "conflicting")
            assert copy.image.startswith(f"{copy.label}/")
    assert all((root / image).is_file() for image in truth.image)
    sizes = {Image.open(root / image).size for image in truth.image[truth.kind != "near_copy"]}
    assert len(sizes) > 2  # crops and rescaled copies change the image size


def test_neighbour_frames_share_patient_and_label(root: Path) -> None:
    neighbours = pd.read_csv(root / "neighbours_truth.csv")
    truth = pd.read_csv(root / "duplicates_truth.csv")
    owner = pd.read_csv(root / "patients.csv").set_index("image").patient_id
    assert list(neighbours.columns) == ["image", "neighbour_of"] and len(neighbours) == 8
    assert not (set(neighbours.image) | set(neighbours.neighbour_of)) & set(truth.image)
    for image, original in zip(neighbours.image, neighbours.neighbour_of, strict=True):
        assert owner[image] == owner[original] and image.split("/")[0] == original.split("/")[0]
        assert _lesion(root / image).any()


def test_patients_cover_every_image(root: Path) -> None:
    patients = pd.read_csv(root / "patients.csv")
    truth = pd.read_csv(root / "duplicates_truth.csv")
    assert list(patients.columns) == ["image", "patient_id"]
    names = sorted(f"{p.parent.name}/{p.name}" for p in _images(root))
    assert sorted(patients.image) == names
    frames = pd.read_csv(root / "neighbours_truth.csv").image
    copies = set(truth.image[truth.role != "original"]) | set(frames)
    originals = patients[~patients.image.isin(copies)]
    assert originals.patient_id.nunique() == 60
    assert originals.groupby("patient_id").size().between(1, 3).all()
    assert (
        originals.groupby("patient_id").image.agg(lambda s: s.str.split("/").str[0].nunique()) == 1
    ).all()
    owner = dict(zip(patients.image, patients.patient_id, strict=True))
    for _, members in truth.groupby("group"):
        assert len({owner[image] for image in members.image}) == 1
    share = originals.drop_duplicates("patient_id").image.str.split("/").str[0].value_counts()
    assert 0.2 < share["benign"] / 60 < 0.6 and share["malignant"] > 8 and share["normal"] > 8


def test_views_of_a_patient_share_anatomy(root: Path) -> None:
    """Depth profiles (layer geometry, echo levels) match better within than across patients."""
    patients = pd.read_csv(root / "patients.csv")
    truth = pd.read_csv(root / "duplicates_truth.csv")
    originals = patients[~patients.image.isin(truth.image[truth.role != "original"])]
    profiles = np.stack([_grey(root / image).mean(axis=1) for image in originals.image])
    owner = originals.patient_id.to_numpy()
    correlation = np.corrcoef(profiles)
    pairs = np.triu(np.ones_like(correlation, dtype=bool), k=1)
    same = owner[:, None] == owner[None, :]
    assert correlation[same & pairs].mean() > correlation[~same & pairs].mean() + 0.05


def test_second_masks_follow_fraction(tmp_path: Path) -> None:
    generate_phantom(tmp_path / "none", **SMALL | {"second_mask_fraction": 0.0})
    assert not list((tmp_path / "none").glob("*/*_mask_1.png"))
    generate_phantom(tmp_path / "all", **SMALL | {"second_mask_fraction": 1.0})
    lesion_images = [p for p in _images(tmp_path / "all") if p.parent.name != "normal"]
    seconds = list((tmp_path / "all").glob("*/*_mask_1.png"))
    assert len(seconds) >= 0.7 * len(lesion_images)
    for second in seconds:
        first = second.with_name(second.name.replace("_mask_1", "_mask"))
        assert _grey(second).any() and not (_grey(second) & _grey(first)).any()


@pytest.mark.parametrize(
    ("shift", "statistic", "direction"),
    [
        ({"gain": 0.5}, lambda g: g.mean(), -1),
        ({"speckle": 2.0}, lambda g: np.abs(np.diff(g, axis=0)).mean(), 1),
        ({"depth_attenuation": 3.0}, lambda g: g[-16:].mean() / g[:32].mean(), -1),
        ({"frequency": 2.0}, lambda g: np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1], -1),
    ],
)
def test_shift_changes_look_not_lesions(tmp_path: Path, shift, statistic, direction) -> None:
    generate_phantom(tmp_path / "base", **SMALL)
    generate_phantom(tmp_path / "shifted", **SMALL | {"shift": shift})
    base, shifted = _images(tmp_path / "base"), _images(tmp_path / "shifted")
    before = np.mean([statistic(_grey(p).astype(float)) for p in base])
    after = np.mean([statistic(_grey(p).astype(float)) for p in shifted])
    assert np.sign(after - before) == direction and abs(after - before) > 0.05 * abs(before)
    for a, b in zip(base, shifted, strict=True):
        assert (_lesion(a) == _lesion(b)).all()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"conflicting": 3, "duplicates": 2}, "conflicting"),
        ({"duplicates": 500}, "duplicates"),
        ({"patients": 0}, "patients"),
        ({"image_size": 16}, "image_size"),
        ({"second_mask_fraction": 1.5}, "second_mask_fraction"),
        ({"shift": {"contrast": 2.0}}, "shift"),
        ({"shift": {"gain": 0.0}}, "shift.gain"),
        ({"shift": {"speckle": -1.0}}, "shift.speckle"),
        ({"seed": -1}, "seed"),
        ({"duplicates": 2.5}, "duplicates"),
    ],
)
def test_bad_parameters_raise(tmp_path: Path, override: dict, key: str) -> None:
    with pytest.raises(MeddapError, match=re.escape(f"'{key}'")):
        generate_phantom(tmp_path / "out", **SMALL | override)
    assert not (tmp_path / "out").exists()


def test_failure_leaves_no_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_phantom(tmp_path / "data", **SMALL)
    before = _digests(tmp_path / "data")
    real_write = phantom.write_png

    def failing_write(array: np.ndarray, path: str | Path) -> None:
        if str(path).endswith("_mask.png"):  # after the first image, before its mask
            raise OSError("disk full")
        real_write(array, path)

    monkeypatch.setattr(phantom, "write_png", failing_write)
    with pytest.raises(OSError, match="disk full"):
        generate_phantom(tmp_path / "data", **SMALL | {"seed": 5})
    with pytest.raises(OSError, match="disk full"):
        generate_phantom(tmp_path / "fresh", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert _digests(tmp_path / "data") == before
