"""Read a dataset folder (one of four layouts) into a manifest and merged lesion masks."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from meddap.common.atomic import atomic_dir, write_parquet, write_png
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.images import HIGH_BIT_MODES, to_gray8
from meddap.common.labels import CLASSES

LABELS = CLASSES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
COLUMNS = [
    "id", "dataset", "label", "image_path", "mask_path", "width", "height", "sha256",
    "patient_id", "source_name", "n_masks",
]  # fmt: skip
_BUSI_NAME = re.compile(r"^(?P<base>(?P<cls>\w+) \(\d+\))(?:_mask(?:_\d+)?)?$")


@dataclass(frozen=True)
class Item:
    """One image of a dataset before reading: where it is and what belongs to it."""

    id: str
    label: str
    image: Path
    masks: tuple[Path, ...] = ()
    patient_id: str | None = None


def slug(text: str) -> str:
    """A lowercase id: runs of anything but letters and digits become one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _label(value: object, source: Path) -> str:
    label = str(value).strip().lower()
    if label not in LABELS:
        raise MeddapError(
            f"{source} has unknown label {value!r} (expected normal, benign or malignant)"
        )
    return label


def _visible(path: Path, root: Path) -> bool:
    """False for hidden files and macOS archive debris (__MACOSX, ._ files)."""
    return not any(p.startswith((".", "__MACOSX")) for p in path.relative_to(root).parts)


def _images(folder: Path, pattern: str) -> list[Path]:
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _class_dirs(raw: Path) -> list[Path]:
    """Folders named benign, malignant or normal anywhere below `raw`, sorted."""
    found = sorted(
        p for p in raw.rglob("*") if p.is_dir() and p.name.lower() in LABELS and _visible(p, raw)
    )
    if not found:
        raise MeddapError(f"no benign, malignant or normal folder found below {raw}")
    return found


def _read_csv(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV as strings; every column in `columns` must exist and be filled unless `optional`."""
    table = pd.read_csv(path, dtype=str)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MeddapError(f"{path} lacks column(s) {', '.join(missing)}")
    empty = [c for c in columns if c not in optional and table[c].isna().any()]
    if empty:
        raise MeddapError(f"{path} has empty cells in column {empty[0]}")
    return table


def _find_one(raw: Path, name: str, hint: str = "") -> Path:
    found = sorted(p for p in raw.rglob(name) if _visible(p, raw))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} files named"
        raise MeddapError(f"{what} {name} found below {raw}{hint}")
    return found[0]


def _patients(raw: Path) -> dict[Path, str]:
    """patient_id per image from `raw/patients.csv` (columns image, patient_id), if present."""
    csv = raw / "patients.csv"
    if not csv.is_file():
        return {}
    table = _read_csv(csv, ("image", "patient_id"), optional=("patient_id",))
    return {
        (raw / img).resolve(): pid for img, pid in zip(table.image, table.patient_id, strict=True)
    }


def _busi_items(raw: Path) -> list[Item]:
    """busi: "<class> (N).png" with masks "<class> (N)_mask.png", "_mask_1.png", ... beside it."""
    patients = _patients(raw)
    items = []
    for folder in _class_dirs(raw):
        items += _busi_folder(folder, _label(folder.name, folder), patients)
    unknown = set(patients) - {item.image.resolve() for item in items}
    if unknown:
        raise MeddapError(
            f"{raw / 'patients.csv'} names image {min(unknown)} that is not in the set"
        )
    return items


def _busi_folder(folder: Path, label: str, patients: dict[Path, str]) -> list[Item]:
    images: dict[str, Path] = {}
    masks: dict[str, list[Path]] = defaultdict(list)
    for path in _images(folder, "*"):
        match = _BUSI_NAME.match(path.stem)
        if not match or match["cls"].lower() != label:
            raise MeddapError(f"{path} is not named '{label} (N).png' or '{label} (N)_mask.png'")
        if "_mask" in path.stem:
            masks[match["base"]].append(path)
        elif match["base"] in images:
            raise MeddapError(_two_extensions(images[match["base"]], path))
        else:
            images[match["base"]] = path
    if not images:
        raise MeddapError(f"class folder {folder} has no images")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise MeddapError(f"mask {masks[orphans[0]][0]} has no image {orphans[0]}.png beside it")
    return [
        Item(slug(base), label, path, tuple(masks[base]), patients.get(path.resolve()))
        for base, path in images.items()
    ]


def _nearest_class(path: Path, raw: Path) -> Path | None:
    """The innermost class-named folder between `raw` and `path`, if any."""
    inside = path.relative_to(raw).parents
    return next((raw / p for p in inside if p.name.lower() in LABELS), None)


def _class_folder_items(raw: Path) -> list[Item]:
    """class_folders: images at any depth below benign/malignant/normal folders, no masks."""
    per_dir: dict[Path, list[Path]] = {folder: [] for folder in _class_dirs(raw)}
    for path in _images(raw, "**/*"):
        folder = _nearest_class(path, raw)
        if folder is not None and "_mask" not in path.stem.lower() and _visible(path, raw):
            per_dir[folder].append(path)
    empty = [folder for folder, paths in per_dir.items() if not paths]
    if empty:
        raise MeddapError(f"class folder {empty[0]} has no images")
    pairs = [(folder, path) for folder, paths in per_dir.items() for path in paths]
    ids = [slug(path.stem) for _, path in pairs]
    if len(set(ids)) < len(ids):  # the same file name in several folders: use relative paths
        ids = [slug(path.relative_to(raw).with_suffix("").as_posix()) for _, path in pairs]
    return [
        Item(id_, _label(folder.name, folder), path)
        for id_, (folder, path) in zip(ids, pairs, strict=True)
    ]


def _orphan_masks(mask_dir: Path, used: Iterable[Path]) -> None:
    orphans = sorted(set(_images(mask_dir, "*")) - set(used))
    if orphans:
        raise MeddapError(f"mask {orphans[0]} has no image")


def _bus_bra_items(raw: Path) -> list[Item]:
    """bus_bra: `bus_data.csv` (columns ID, Pathology, Case) with `Images/` and `Masks/` beside it.

    As in the BUS-BRA release, ID `bus_0001-l` has image `Images/bus_0001-l.png` and mask
    `Masks/mask_0001-l.png` (the first 'bus_' of the ID replaced by 'mask_'); Case is the patient.
    """
    csv = _find_one(raw, "bus_data.csv")
    table = _read_csv(csv, ("ID", "Pathology", "Case"), optional=("Case",))
    items = []
    for id_, pathology, case in zip(table.ID, table.Pathology, table.Case, strict=True):
        image = csv.parent / "Images" / f"{id_}.png"
        mask = csv.parent / "Masks" / f"{id_.replace('bus_', 'mask_', 1)}.png"
        if not image.is_file():
            raise MeddapError(f"image {image} listed in {csv} is missing")
        masks = (mask,) if mask.is_file() else ()
        items.append(Item(slug(id_), _label(pathology, csv), image, masks, case))
    _orphan_masks(csv.parent / "Masks", (m for item in items for m in item.masks))
    return items


def _udiat_items(raw: Path) -> list[Item]:
    """udiat: `original/*.png` and `GT/*.png` with equal names, `labels.csv` beside them.

    labels.csv has columns image (file name, with or without .png) and label.
    """
    original = _find_one(raw, "original", " (expected original/, GT/ and labels.csv)")
    csv = original.parent / "labels.csv"
    if not csv.is_file():
        raise MeddapError(
            f"{csv} is missing: export the labels of UDIAT's xlsx (columns image, label) to it"
        )
    table = _read_csv(csv, ("image", "label"))
    labels = {
        Path(img).stem: _label(lab, csv) for img, lab in zip(table.image, table.label, strict=True)
    }
    items = []
    for image in _images(original, "*"):
        if image.stem not in labels:
            raise MeddapError(f"image {image} has no row in {csv}")
        mask = original.parent / "GT" / image.name
        masks = (mask,) if mask.is_file() else ()
        items.append(Item(slug(image.stem), labels[image.stem], image, masks))
    _orphan_masks(original.parent / "GT", (m for item in items for m in item.masks))
    return items


LAYOUTS: dict[str, Callable[[Path], list[Item]]] = {
    "busi": _busi_items,
    "class_folders": _class_folder_items,
    "bus_bra": _bus_bra_items,
    "udiat": _udiat_items,
}
MASKED_LAYOUTS = ("busi", "bus_bra", "udiat")


def _open(path: Path) -> Image.Image:
    """A fully decoded image (decoding is what finds truncated or corrupt files)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MeddapError(f"image {path} is unreadable or corrupt ({err})") from err
    return image


def foreground(mask: Image.Image, path: Path) -> np.ndarray:
    """Lesion pixels of mask `path` in any mode (1-bit, L, RGB, RGBA, 16-bit): bright, opaque.

    BUSI's RGBA masks (benign 4's `_mask_1`) are a white lesion on an opaque black background;
    16-bit and float masks are scaled to 8 bits as images are (`to_gray8`) before the test.
    """
    if mask.mode in HIGH_BIT_MODES:
        return np.asarray(to_gray8(mask, path)) > 127
    rgba = np.asarray(mask.convert("RGBA"))
    return (rgba[..., :3].max(axis=2) > 127) & (rgba[..., 3] > 0)


def merged_mask(item: Item, size: tuple[int, int]) -> np.ndarray:
    """The union of `item`'s masks as a uint8 0/255 array; every mask must match `size`."""
    union = np.zeros((size[1], size[0]), dtype=bool)
    for path in item.masks:
        mask = _open(path)
        if mask.size != size:
            raise MeddapError(
                f"mask {path} is {mask.size[0]}x{mask.size[1]} but its image {item.image.name} "
                f"is {size[0]}x{size[1]}"
            )
        union |= foreground(mask, path)
    return union.astype(np.uint8) * 255


def _row(item: Item, dataset: str, masks_dir: Path) -> dict[str, object]:
    image = _open(item.image)
    if image.mode in HIGH_BIT_MODES:  # the only modes whose values can be out of range
        to_gray8(image, item.image)  # pixel values every stage can read, or one sentence now
    size = image.size
    mask_path = None
    if item.masks:
        mask_path = masks_dir / f"{item.id}.png"
        write_png(merged_mask(item, size), mask_path)
    return {
        "id": item.id,
        "dataset": dataset,
        "label": item.label,
        "image_path": str(item.image.resolve()),
        "mask_path": None if mask_path is None else str(mask_path.resolve()),
        "width": size[0],
        "height": size[1],
        "sha256": file_sha256(item.image),
        "patient_id": item.patient_id,
        "source_name": item.image.name,
        "n_masks": len(item.masks),
    }


def _two_extensions(first: Path, second: Path) -> str:
    """The error sentence for two images whose names differ only in the extension."""
    return (
        f"images {first} and {second} have the same name with two extensions "
        "(expected one image per name: remove or rename one)"
    )


def _stem(item: Item) -> str:
    """The image's file name without extension in Unicode form NFC (macOS may store NFD)."""
    return unicodedata.normalize("NFC", item.image.stem)


def unique_ids(items: list[Item]) -> list[Item]:
    """Items whose id is empty, or shared by differently named images, get a short hash suffix.

    `slug` keeps only a-z and 0-9, so non-Latin names collide (`乳腺 1.png` and `超声 1.png` both
    give '1') or give ''. Those ids get '_' and the first 8 hex digits of the sha256 of the
    image's file stem (NFC, UTF-8) appended ('1_504f08be' for `乳腺 1.png`; just the digits for
    an empty id).
    Non-empty ids of one name each (all of BUSI, BUS-BRA, UDIAT and the phantom) are unchanged.
    Images of the same stem keep one id, so `_check_ids` stops naming both.
    """
    stems: dict[str, set[str]] = defaultdict(set)
    for item in items:
        stems[item.id].add(_stem(item))
    return [
        item if item.id and len(stems[item.id]) == 1 else replace(item, id=_hashed_id(item))
        for item in items
    ]


def _hashed_id(item: Item) -> str:
    """`item.id` + '_' + 8 hex digits of the sha256 of its stem (the digits alone if empty)."""
    digest = hashlib.sha256(_stem(item).encode()).hexdigest()[:8]
    return f"{item.id}_{digest}" if item.id else digest


def _check_ids(items: list[Item]) -> None:
    """Stop naming both images when two of the (sorted) items share an id."""
    for before, after in zip(items, items[1:], strict=False):
        if before.id != after.id:
            continue
        if _stem(before) == _stem(after) and before.image.parent == after.image.parent:
            raise MeddapError(_two_extensions(before.image, after.image))
        raise MeddapError(f"images {before.image} and {after.image} both get id {after.id!r}")


def _check_classes(items: list[Item], dataset: str, raw: Path) -> None:
    """A classifier needs two classes: stop when the dataset holds images of only one."""
    found = sorted({item.label for item in items})
    if len(found) < 2:
        raise MeddapError(
            f"dataset {dataset!r} ({raw}) holds only {', '.join(found)} images: expected images "
            "of at least two of normal, benign and malignant"
        )


def _items(raw: Path, layout: str) -> list[Item]:
    if layout not in LAYOUTS:
        raise MeddapError(f"layout {layout!r} is unknown (expected one of {', '.join(LAYOUTS)})")
    if not raw.is_dir():
        what = "is not a folder" if raw.exists() else "does not exist"
        raise MeddapError(f"dataset folder {raw} {what}")
    items = sorted(unique_ids(LAYOUTS[layout](raw)), key=lambda item: item.id)
    if not items:
        raise MeddapError(f"no images found below {raw} ({layout} layout)")
    _check_ids(items)
    if layout in MASKED_LAYOUTS:
        for item in items:
            if not item.masks:
                raise MeddapError(f"image {item.image} has no mask (missing mask)")
    return items


def build_manifest(raw: Path, dataset: str, layout: str, masks_dir: Path) -> pd.DataFrame:
    """One manifest row per image of folder `raw`, sorted by id; merged masks go to `masks_dir`."""
    items = _items(Path(raw), layout)
    _check_classes(items, dataset, Path(raw))
    rows = [_row(item, dataset, Path(masks_dir)) for item in items]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["patient_id"] = table["patient_id"].astype("string")
    return table


def ingest(*, raw: str, manifest: str, masks: str, dataset: str, layout: str) -> None:
    """Job: write the manifest of dataset folder `raw` and its merged masks, atomically."""
    final = Path(masks).resolve()
    with atomic_dir(masks) as tmp:
        table = build_manifest(Path(raw), dataset, layout, tmp)
        table["mask_path"] = [
            None if p is None else str(final / Path(p).name) for p in table.mask_path
        ]
        write_parquet(table, manifest)
