"""Deterministic phantom breast-ultrasound dataset written in the BUSI on-disk layout.

Patients get one class (normal, benign, malignant) and 1-3 views sharing their anatomy. Lesions
follow BI-RADS priors: benign = wide, smooth, homogeneous, posterior enhancement; malignant =
tall, spiculated, heterogeneous, posterior shadowing. Near-duplicates (some with the other lesion
label) are planted with known ground truth. All lengths are fractions of the image side.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage, special
from skimage.draw import disk, polygon2mask

from meddap.common.atomic import atomic_dir, write_png
from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES

CLASS_PRIOR = (0.3, 0.4, 0.3)
SHIFT_DEFAULTS = {"gain": 1.0, "speckle": 1.0, "depth_attenuation": 1.0, "frequency": 1.0}
_OTHER_LESION = {"benign": "malignant", "malignant": "benign"}
_GRAIN = (1.8, 2.8)  # speckle correlation (axial, lateral) in pixels at 128 px, frequency 1
_TEXTURE = (0.4, 0.015, 0.08)  # tissue texture: log-amplitude, axial and lateral scale
_LOOKS = 2  # independent speckle patterns compounded per image
_ATTENUATION = 0.8  # amplitude decay exponent over the image depth
_FLOOR = 0.01  # electronic noise floor (amplitude)
_RANGE_DB, _TOP_DB = 28.0, 12.0  # displayed dynamic range below and above unit amplitude
_GAMMA = 1.5  # display curve applied to the log-compressed image
_VIEW_STEP = 0.7  # horizontal distance between a patient's views on its tissue canvas
_COPY_SCALE = (0.98, 0.995)  # crop side (fraction of the image) of a near-duplicate
_COPY_SHIFT = 1.0  # largest shift of a near-duplicate's crop, in pixels at 128 px
_ANGLES = np.linspace(0.0, 2.0 * math.pi, 256, endpoint=False)


@dataclass(frozen=True)
class Anatomy:
    """One patient's tissue: layer boundaries, echo levels, texture canvas, lesion shape."""

    label: str
    depths: np.ndarray  # (3,) mean depth of skin/fat, fat/gland, gland/muscle boundaries
    waves: np.ndarray  # (3, 3) amplitude, wavelength, phase of each boundary
    echo: np.ndarray  # (4,) echogenicity of skin, fat, gland, muscle
    canvas: np.ndarray  # (N, canvas width) unit-variance tissue texture
    radius: np.ndarray  # (angles,) relative lesion border radius
    axes: tuple[float, float]  # lesion semi-axes (horizontal, vertical)


@dataclass
class Record:
    """One image to write: its class folder, patient, pixels and lesion masks."""

    label: str
    patient: str
    image: np.ndarray
    masks: list[np.ndarray]
    number: int = 0  # N in "<label> (N).png", assigned once all images exist
    group: int = 0  # duplicate group (0: none)
    role: str = ""  # original, duplicate or conflicting within its group

    @property
    def name(self) -> str:
        """Path of the image relative to the dataset root."""
        return f"{self.label}/{self.label} ({self.number}).png"


def generate_phantom(
    root: str | Path,
    *,
    patients: int,
    image_size: int,
    duplicates: int,
    conflicting: int,
    second_mask_fraction: float,
    seed: int,
    shift: dict[str, float] | None = None,
) -> None:
    """Write a phantom BUSI-layout dataset to `root` (atomically)."""
    _check_counts(patients, image_size, duplicates, conflicting, second_mask_fraction, seed)
    acq = _acquisition(shift)
    rng = np.random.default_rng(seed)
    records = _patients(rng, patients, image_size, second_mask_fraction, acq)
    records += _plant_duplicates(rng, records, duplicates, conflicting)
    _number(rng, records)
    with atomic_dir(root) as tmp:
        _write(tmp, records)


def _check_counts(
    patients: int, image_size: int, duplicates: int, conflicting: int, fraction: float, seed: int
) -> None:
    """Stop on a count, size, fraction or seed that the generator cannot honour."""
    for key, value, low in (
        ("patients", patients, 1),
        ("image_size", image_size, 32),
        ("duplicates", duplicates, 0),
        ("conflicting", conflicting, 0),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MeddapError(
                f"phantom parameter '{key}' must be an integer >= {low}, not {value!r}"
            )
    if conflicting > duplicates:
        raise MeddapError(
            f"phantom parameter 'conflicting' ({conflicting}) must not exceed 'duplicates' "
            f"({duplicates}): conflicting copies are taken from the duplicates"
        )
    if not isinstance(fraction, int | float) or not 0.0 <= fraction <= 1.0:
        raise MeddapError(
            f"phantom parameter 'second_mask_fraction' must lie in [0, 1], not {fraction!r}"
        )


def _acquisition(shift: dict[str, float] | None) -> dict[str, float]:
    """Acquisition multipliers: the defaults updated by a validated `shift`."""
    shift = shift or {}
    unknown = sorted(set(shift) - set(SHIFT_DEFAULTS))
    if unknown:
        raise MeddapError(
            f"phantom parameter 'shift' has unknown key(s) {unknown}; "
            f"expected a subset of {sorted(SHIFT_DEFAULTS)}"
        )
    for key, value in shift.items():
        positive = key in ("gain", "frequency")
        ok = isinstance(value, int | float) and math.isfinite(value) and value >= 0
        if not ok or (positive and value == 0):
            bound = "> 0" if positive else ">= 0"
            raise MeddapError(
                f"phantom parameter 'shift.{key}' must be a number {bound}, not {value!r}"
            )
    return SHIFT_DEFAULTS | {key: float(value) for key, value in shift.items()}


def _patients(
    rng: np.random.Generator, count: int, size: int, fraction: float, acq: dict[str, float]
) -> list[Record]:
    """`count` patients, each of one class with 1-3 views of its anatomy."""
    records = []
    for index in range(count):
        anatomy = _anatomy(rng, str(rng.choice(CLASSES, p=CLASS_PRIOR)), size)
        patient = f"P{index + 1:03d}"
        for view in range(int(rng.integers(1, 4))):
            image, masks = _render(rng, anatomy, view, fraction, acq)
            records.append(Record(anatomy.label, patient, image, masks))
    return records


def _anatomy(rng: np.random.Generator, label: str, size: int) -> Anatomy:
    """Draw a patient's tissue; the lesion shape is drawn for every class, used for lesions."""
    width = int(size * (1 + 2 * _VIEW_STEP + 0.2))
    noise = rng.standard_normal((size, width))
    canvas = ndimage.gaussian_filter(noise, (_TEXTURE[1] * size, _TEXTURE[2] * size), mode="wrap")
    if label == "benign":
        across = rng.uniform(0.12, 0.2)
        axes = (across, across * rng.uniform(0.45, 0.7))
    else:
        across = rng.uniform(0.08, 0.13)
        axes = (across, across * rng.uniform(1.3, 1.75))
    return Anatomy(
        label=label,
        depths=np.array([rng.uniform(0.04, 0.07), rng.uniform(0.18, 0.3), rng.uniform(0.62, 0.8)]),
        waves=np.column_stack(
            [rng.uniform(0.005, 0.03, 3), rng.uniform(0.6, 1.6, 3), rng.uniform(0, 2 * np.pi, 3)]
        ),
        echo=np.array([rng.uniform(1.8, 2.5), rng.uniform(0.18, 0.3), rng.uniform(0.8, 1.0), 0.45]),
        canvas=canvas / canvas.std(),
        radius=_border(rng, label),
        axes=axes,
    )


def _border(rng: np.random.Generator, label: str) -> np.ndarray:
    """Relative border radius per angle: smooth for benign, lobulated and spiculated otherwise."""
    orders = np.arange(2, 4) if label == "benign" else np.arange(3, 11)
    scale = 0.04 if label == "benign" else 0.12
    amps = rng.uniform(0, scale, orders.size) / np.sqrt(orders / orders[0])
    phases = rng.uniform(0, 2 * np.pi, orders.size)
    radius = 1 + (amps * np.cos(np.outer(_ANGLES, orders) + phases)).sum(axis=1)
    if label == "malignant":
        tips = rng.uniform(0, 2 * np.pi, int(rng.integers(6, 11)))
        gap = np.abs(np.angle(np.exp(1j * (_ANGLES[:, None] - tips))))
        spikes = rng.uniform(0.25, 0.5, tips.size) * np.clip(1 - gap / 0.07, 0, None)
        radius += spikes.max(axis=1)
    return radius


def _render(
    rng: np.random.Generator, anatomy: Anatomy, view: int, fraction: float, acq: dict[str, float]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One B-mode view of a patient: its grey image and its lesion masks (one empty if normal)."""
    size = anatomy.canvas.shape[0]
    offset = view * _VIEW_STEP + rng.uniform(0, 0.2)
    start = int(offset * size)
    echo = _layers(rng, anatomy, offset, size)
    echo *= np.exp(_TEXTURE[0] * anatomy.canvas[:, start : start + size])
    if anatomy.label == "normal":
        masks = [np.zeros((size, size), dtype=bool)]
    else:
        masks = _lesion_masks(rng, anatomy, size, fraction)
        echo = _lesion_echo(rng, echo, masks, anatomy.label)
    return _scan(rng, echo, acq), masks


def _layers(rng: np.random.Generator, anatomy: Anatomy, offset: float, size: int) -> np.ndarray:
    """Echogenicity of the skin, fat, gland and muscle layers, with wavy boundaries."""
    lateral = np.arange(size) / size
    tilt, lift = rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03)
    amp, wavelength, phase = anatomy.waves.T
    waves = amp[:, None] * np.sin(
        2 * np.pi * (lateral + offset) / wavelength[:, None] + phase[:, None]
    )
    bounds = anatomy.depths[:, None] + lift + tilt * (lateral - 0.5) + waves
    depth = np.arange(size)[None, :, None] / size
    steps = special.expit((depth - bounds[:, None, :]) / 0.008)
    return anatomy.echo[0] + np.tensordot(np.diff(anatomy.echo), steps, axes=1)


def _lesion_masks(
    rng: np.random.Generator, anatomy: Anatomy, size: int, fraction: float
) -> list[np.ndarray]:
    """The main lesion mask and, with probability `fraction`, a smaller second lesion beside it."""
    centre = np.array([rng.uniform(0.3, 0.7), rng.uniform(0.33, 0.48)])
    scale = rng.uniform(0.9, 1.1)
    masks = [_lesion_mask(anatomy, centre, scale, rng.uniform(-0.15, 0.15), size)]
    if rng.random() < fraction:
        small = scale * rng.uniform(0.45, 0.65)
        gap = 1.1 * anatomy.axes[0] * anatomy.radius.max() * (scale + small)
        side = 1 if centre[0] < 0.5 else -1
        second = centre + [side * gap, rng.uniform(-0.05, 0.05)]
        mask = _lesion_mask(anatomy, second, small, rng.uniform(-0.15, 0.15), size) & ~masks[0]
        if mask.sum() >= 4:
            masks.append(mask)
    return masks


def _lesion_mask(
    anatomy: Anatomy, centre: np.ndarray, scale: float, angle: float, size: int
) -> np.ndarray:
    """Rasterise the patient's lesion border at `centre` (x, depth), scaled and rotated."""
    across, down = anatomy.axes
    radius = anatomy.radius * scale
    x, z = radius * across * np.cos(_ANGLES), radius * down * np.sin(_ANGLES)
    cos, sin = math.cos(angle), math.sin(angle)
    rows = (centre[1] + sin * x + cos * z) * size
    cols = (centre[0] + cos * x - sin * z) * size
    return polygon2mask((size, size), np.column_stack([rows, cols]))


def _lesion_echo(
    rng: np.random.Generator, echo: np.ndarray, masks: list[np.ndarray], label: str
) -> np.ndarray:
    """Paint the lesion interior, its border and the posterior enhancement or shadow."""
    size = echo.shape[0]
    lesion = np.logical_or.reduce(masks)
    below = np.logical_or.accumulate(lesion, axis=0) & ~lesion
    depth = np.cumsum(below, axis=0) / size
    if label == "benign":
        inside = rng.uniform(0.05, 0.1)
        weight = ndimage.gaussian_filter(lesion.astype(float), 0.012 * size)
        posterior = 0.45 * np.exp(-depth / 0.35)
    else:
        het = ndimage.gaussian_filter(rng.standard_normal(echo.shape), 0.02 * size)
        inside = rng.uniform(0.06, 0.1) * np.exp(0.6 * het / het.std())
        weight = ndimage.gaussian_filter(lesion.astype(float), 0.004 * size)
        halo = ndimage.binary_dilation(lesion, iterations=max(1, size // 40)) & ~lesion
        echo = echo * (1 + 0.35 * ndimage.gaussian_filter(halo.astype(float), 0.01 * size))
        posterior = -0.7 * np.exp(-depth / 1.5)
        inside = _calcify(rng, lesion, inside)
    posterior = ndimage.gaussian_filter(
        np.where(below, posterior, 0.0), (0.005 * size, 0.02 * size)
    )
    return (echo * (1 - weight) + inside * weight) * (1 + posterior)


def _calcify(rng: np.random.Generator, lesion: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """`inside` with a few bright microcalcification dots at random lesion pixels."""
    inside = inside.copy()
    spots = rng.choice(np.flatnonzero(lesion), size=int(rng.integers(0, 4)))
    for spot in spots:
        rows, cols = disk(
            np.unravel_index(spot, lesion.shape), lesion.shape[0] / 128, shape=lesion.shape
        )
        inside[rows, cols] = 1.6
    return inside


def _scan(rng: np.random.Generator, echo: np.ndarray, acq: dict[str, float]) -> np.ndarray:
    """Echogenicity to an 8-bit B-mode image: speckle, depth attenuation, gain, log compression."""
    size = echo.shape[0]
    grain = np.array(_GRAIN) * size / 128 / acq["frequency"]
    signal = ndimage.gaussian_filter(rng.standard_normal((2 * _LOOKS, size, size)), (0, *grain))
    envelope = np.hypot(signal[::2], signal[1::2]).mean(axis=0) ** acq["speckle"]
    depth = np.arange(size)[:, None] / size
    attenuation = np.exp(-_ATTENUATION * acq["depth_attenuation"] * depth)
    amplitude = acq["gain"] * echo * attenuation * envelope / envelope.mean()
    decibels = 20 * np.log10(amplitude + _FLOOR)
    level = np.clip((decibels + _RANGE_DB) / (_RANGE_DB + _TOP_DB), 0, 1)
    return (255 * level**_GAMMA).round().astype(np.uint8)


def _plant_duplicates(
    rng: np.random.Generator, records: list[Record], duplicates: int, conflicting: int
) -> list[Record]:
    """Near-copies of distinct lesion images; the first `conflicting` go to the other class."""
    lesions = [index for index, record in enumerate(records) if record.label != "normal"]
    if duplicates > len(lesions):
        raise MeddapError(
            f"phantom parameter 'duplicates' ({duplicates}) exceeds the {len(lesions)} lesion "
            "images generated; lower it or raise 'patients'"
        )
    copies = []
    for group, index in enumerate(rng.choice(lesions, size=duplicates, replace=False), start=1):
        original = records[index]
        original.group, original.role = group, "original"
        role = "conflicting" if group <= conflicting else "duplicate"
        label = _OTHER_LESION[original.label] if role == "conflicting" else original.label
        image, masks = _near_copy(rng, original)
        copies.append(Record(label, original.patient, image, masks, group=group, role=role))
    return copies


def _near_copy(rng: np.random.Generator, original: Record) -> tuple[np.ndarray, list[np.ndarray]]:
    """Shift, rescale (crop and resize) and JPEG re-encode an image; perturb its masks alike."""
    size = original.image.shape[0]
    side = size * rng.uniform(*_COPY_SCALE)
    left, top = np.clip(
        (size - side) / 2 + rng.uniform(-_COPY_SHIFT, _COPY_SHIFT, 2) * size / 128, 0, size - side
    )
    box = (left, top, left + side, top + side)
    buffer = io.BytesIO()
    _resize(original.image, box).save(buffer, format="JPEG", quality=int(rng.integers(85, 96)))
    image = np.asarray(Image.open(buffer).convert("L"))
    masks = [_resize(mask.astype(np.uint8) * 255, box) for mask in original.masks]
    grow = int(rng.integers(-1, 2))
    first, *others = [_grow(np.asarray(mask) >= 128, grow) for mask in masks]
    others = [mask & ~first for mask in others]
    return image, [first] + [mask for mask in others if mask.any()]


def _resize(array: np.ndarray, box: tuple[float, float, float, float]) -> Image.Image:
    """The `box` region of an 8-bit array, resized bilinearly back to the array's size."""
    return Image.fromarray(array).resize(array.shape[::-1], Image.Resampling.BILINEAR, box=box)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate (pixels > 0) or erode (pixels < 0) a mask, as a second annotator might draw it."""
    if pixels > 0:
        return ndimage.binary_dilation(mask, iterations=pixels)
    if pixels < 0 and mask.sum() > 50:
        return ndimage.binary_erosion(mask, iterations=-pixels)
    return mask


def _number(rng: np.random.Generator, records: list[Record]) -> None:
    """Give the images of each class folder a random order of the numbers 1..count."""
    for label in CLASSES:
        members = [record for record in records if record.label == label]
        for record, number in zip(members, rng.permutation(len(members)) + 1, strict=True):
            record.number = int(number)


def _write(root: Path, records: list[Record]) -> None:
    """Images (grey replicated to RGB), masks (L, 0/255) and the two ground-truth tables."""
    for record in records:
        write_png(np.repeat(record.image[:, :, None], 3, axis=2), root / record.name)
        stem = root / record.name.removesuffix(".png")
        for index, mask in enumerate(record.masks):
            suffix = "_mask" if index == 0 else f"_mask_{index}"
            write_png(mask.astype(np.uint8) * 255, f"{stem}{suffix}.png")
    ordered = sorted(records, key=lambda record: (CLASSES.index(record.label), record.number))
    patients = pd.DataFrame(
        {"image": [r.name for r in ordered], "patient_id": [r.patient for r in ordered]}
    )
    patients.to_csv(root / "patients.csv", index=False)
    grouped = sorted((r for r in records if r.group), key=lambda r: (r.group, r.role != "original"))
    truth = pd.DataFrame(
        {
            "group": [r.group for r in grouped],
            "image": [r.name for r in grouped],
            "label": [r.label for r in grouped],
            "role": [r.role for r in grouped],
        }
    )
    truth.to_csv(root / "duplicates_truth.csv", index=False)
