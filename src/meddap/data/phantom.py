"""Deterministic phantom breast-ultrasound dataset written in the BUSI on-disk layout.

Patients get one class (normal, benign, malignant) and 1-3 views sharing their anatomy. Lesions
follow BI-RADS priors: benign = wide, smooth, homogeneous, posterior enhancement; malignant =
tall, spiculated, heterogeneous, posterior shadowing. Near-duplicates (some with the other lesion
label), crops and rescaled copies are planted with known ground truth, and so are neighbour
frames: the same lesion scanned again after the probe slid and pressed (tissue and speckle move,
part of the speckle decorrelates), which are not duplicates. All lengths are fractions of the
image side.
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
_CROP_SIDE = (0.7, 0.9)  # side of a cropped copy per axis (fraction), written at that size
_RESCALE = (0.8, 1.3)  # size factor per axis of a rescaled copy
COPY_KINDS = ("near_copy", "crop", "rescaled")  # planted group g is COPY_KINDS[(g - 1) % 3]
_SLIDE = (1.0, 3.0)  # lateral probe slide of a neighbour frame, pixels at 128 px
_PRESS = (1.02, 1.05)  # axial compression of a neighbour frame
_KEPT_SPECKLE = (0.85, 0.95)  # correlation of a neighbour frame's speckle with the original's
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
    echo: np.ndarray | None = None  # echogenicity map of a rendered view
    signal: np.ndarray | None = None  # its speckle field (2 * looks, H, W)
    number: int = 0  # N in "<label> (N).png", assigned once all images exist
    group: int = 0  # duplicate group (0: none)
    role: str = ""  # original, duplicate or conflicting within its group
    kind: str = ""  # how a copy was made (COPY_KINDS)
    neighbour_of: Record | None = None  # the view a neighbour frame was rescanned from

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
    records += _plant_neighbours(rng, records, duplicates, acq)
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
            records.append(_render(rng, anatomy, patient, view, fraction, acq))
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
    rng: np.random.Generator,
    anatomy: Anatomy,
    patient: str,
    view: int,
    fraction: float,
    acq: dict[str, float],
) -> Record:
    """One B-mode view of a patient: grey image, lesion masks (one empty if normal), echo map."""
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
    signal = _speckle(rng, size, acq)
    return Record(anatomy.label, patient, _scan(echo, signal, acq), masks, echo, signal)


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


def _speckle(rng: np.random.Generator, size: int, acq: dict[str, float]) -> np.ndarray:
    """Correlated Gaussian fields, two (in-phase, quadrature) per look: (2 * looks, size, size)."""
    grain = np.array(_GRAIN) * size / 128 / acq["frequency"]
    return ndimage.gaussian_filter(rng.standard_normal((2 * _LOOKS, size, size)), (0, *grain))


def _scan(echo: np.ndarray, signal: np.ndarray, acq: dict[str, float]) -> np.ndarray:
    """Echogenicity to an 8-bit B-mode image: speckle, depth attenuation, gain, log compression."""
    size = echo.shape[0]
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
    """Copies of distinct lesion images (kinds cycle through COPY_KINDS); the first
    `conflicting` go to the other class."""
    lesions = [index for index, record in enumerate(records) if record.label != "normal"]
    if duplicates > len(lesions):
        raise MeddapError(
            f"phantom parameter 'duplicates' ({duplicates}) exceeds the {len(lesions)} lesion "
            "images generated; lower it or raise 'patients'"
        )
    copies = []
    for group, index in enumerate(rng.choice(lesions, size=duplicates, replace=False), start=1):
        original = records[index]
        kind = COPY_KINDS[(group - 1) % len(COPY_KINDS)]
        original.group, original.role, original.kind = group, "original", kind
        role = "conflicting" if group <= conflicting else "duplicate"
        label = _OTHER_LESION[original.label] if role == "conflicting" else original.label
        image, masks = _COPIERS[kind](rng, original)
        copies.append(
            Record(label, original.patient, image, masks, group=group, role=role, kind=kind)
        )
    return copies


def _plant_neighbours(
    rng: np.random.Generator, records: list[Record], count: int, acq: dict[str, float]
) -> list[Record]:
    """`count` neighbour frames of distinct lesion views that are no duplicate's original."""
    free = [
        k
        for k, r in enumerate(records)
        if r.label != "normal" and not r.group and r.echo is not None
    ]
    if count > len(free):
        raise MeddapError(
            f"phantom parameter 'duplicates' ({count}) exceeds the {len(free)} lesion images left "
            "for as many neighbour frames; lower it or raise 'patients'"
        )
    return [_neighbour(rng, records[k], acq) for k in rng.choice(free, size=count, replace=False)]


def _neighbour(rng: np.random.Generator, original: Record, acq: dict[str, float]) -> Record:
    """The original's view rescanned: the probe slid sideways and pressed, speckle partly new."""
    size = original.image.shape[0]
    slide = rng.uniform(*_SLIDE) * size / 128 * rng.choice([-1.0, 1.0])
    press, kept = rng.uniform(*_PRESS), rng.uniform(*_KEPT_SPECKLE)

    def move(x: np.ndarray, order: int) -> np.ndarray:
        matrix, offset = [press, 1.0][-x.ndim :], [0.0, slide][-x.ndim :]
        if x.ndim == 3:
            matrix, offset = [1.0, *matrix], [0.0, *offset]
        return ndimage.affine_transform(x, np.array(matrix), offset, order=order, mode="nearest")

    signal = kept * move(original.signal, 1) + math.sqrt(1 - kept**2) * _speckle(rng, size, acq)
    masks = [move(mask.astype(np.uint8), 0) > 0 for mask in original.masks]
    masks = [masks[0]] + [mask for mask in masks[1:] if mask.any()]
    image = _scan(move(original.echo, 1), signal, acq)
    return Record(original.label, original.patient, image, masks, neighbour_of=original)


def _near_copy(rng: np.random.Generator, original: Record) -> tuple[np.ndarray, list[np.ndarray]]:
    """Shift, rescale (crop and resize) and JPEG re-encode an image; perturb its masks alike."""
    size = original.image.shape[0]
    side = size * rng.uniform(*_COPY_SCALE)
    left, top = np.clip(
        (size - side) / 2 + rng.uniform(-_COPY_SHIFT, _COPY_SHIFT, 2) * size / 128, 0, size - side
    )
    box = (left, top, left + side, top + side)
    image = _jpeg(rng, _resize(original.image, box))
    masks = [_resize(mask.astype(np.uint8) * 255, box) for mask in original.masks]
    grow = int(rng.integers(-1, 2))
    first, *others = [_grow(np.asarray(mask) >= 128, grow) for mask in masks]
    others = [mask & ~first for mask in others]
    return image, [first] + [mask for mask in others if mask.any()]


def _crop(rng: np.random.Generator, original: Record) -> tuple[np.ndarray, list[np.ndarray]]:
    """A crop of 70-90% per axis that keeps the lesion, at the original pixel pitch, JPEG."""
    size = original.image.shape[0]
    rows, cols = np.nonzero(np.logical_or.reduce(original.masks))
    box = []
    for lesion in (rows, cols):
        side = int(size * rng.uniform(*_CROP_SIDE))
        low, high = max(0, lesion.max() + 1 - side), min(lesion.min(), size - side)
        start = int(rng.integers(min(low, high), max(low, high) + 1))
        box.append(slice(start, start + side))
    image = _jpeg(rng, Image.fromarray(original.image[tuple(box)]))
    return image, [mask[tuple(box)] for mask in original.masks if mask[tuple(box)].any()]


def _rescaled(rng: np.random.Generator, original: Record) -> tuple[np.ndarray, list[np.ndarray]]:
    """The whole image resized by 0.8-1.3 per axis (bilinear), JPEG; masks resized alike."""
    size = original.image.shape[0]
    shape = (round(size * rng.uniform(*_RESCALE)), round(size * rng.uniform(*_RESCALE)))
    image = _jpeg(rng, Image.fromarray(original.image).resize(shape, Image.Resampling.BILINEAR))
    masks = [
        np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(shape)) >= 128
        for mask in original.masks
    ]
    return image, [masks[0]] + [mask & ~masks[0] for mask in masks[1:] if (mask & ~masks[0]).any()]


def _jpeg(rng: np.random.Generator, image: Image.Image) -> np.ndarray:
    """`image` after a JPEG round trip at quality 85-95."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(85, 96)))
    return np.asarray(Image.open(buffer).convert("L"))


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


_COPIERS = {"near_copy": _near_copy, "crop": _crop, "rescaled": _rescaled}


def _number(rng: np.random.Generator, records: list[Record]) -> None:
    """Give the images of each class folder a random order of the numbers 1..count."""
    for label in CLASSES:
        members = [record for record in records if record.label == label]
        for record, number in zip(members, rng.permutation(len(members)) + 1, strict=True):
            record.number = int(number)


def _write(root: Path, records: list[Record]) -> None:
    """Images (grey replicated to RGB), masks (L, 0/255), patients and the truth tables."""
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
            "kind": [r.kind for r in grouped],
        }
    )
    truth.to_csv(root / "duplicates_truth.csv", index=False)
    frames = sorted((r for r in records if r.neighbour_of), key=lambda r: r.neighbour_of.name)
    neighbours = pd.DataFrame(
        {"image": [r.name for r in frames], "neighbour_of": [r.neighbour_of.name for r in frames]}
    )
    neighbours.to_csv(root / "neighbours_truth.csv", index=False)
