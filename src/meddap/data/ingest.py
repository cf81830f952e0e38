"""Read a dataset folder (one of the layouts in `meddap.data.layouts`) into a manifest and masks."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from meddap.common.atomic import atomic_dir, write_parquet, write_png
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.images import HIGH_BIT_MODES, to_gray8
from meddap.common.labels import LESION_CLASSES, UNKNOWN
from meddap.common.settings import MaskCheck
from meddap.data.layouts import (
    LAYOUTS,
    Item,
    open_image,
    two_extensions,
)

COLUMNS = [
    "id", "dataset", "label", "image_path", "mask_path", "width", "height", "sha256",
    "patient_id", "source_name", "n_masks", "mask_finding",
]  # fmt: skip
MASK_POLICIES = ("drop", "keep", "stop")
FINDING_COLUMNS = ["id", "label", "image_path", "finding", "action"]


def foreground(mask: Image.Image, path: Path) -> np.ndarray:
    """Lesion pixels of mask `path` in any mode (1-bit, L, RGB, RGBA, 16-bit): bright, opaque.

    BUSI's RGBA masks (benign 4's `_mask_1`) are a white lesion on an opaque black background;
    BUS-UCLM's RGB masks paint lesions pure green or red, whose brightest channel counts;
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
        mask = open_image(path)
        if mask.size != size:
            raise MeddapError(
                f"mask {path} is {mask.size[0]}x{mask.size[1]} but its image {item.image.name} "
                f"is {size[0]}x{size[1]}"
            )
        union |= foreground(mask, path)
    return union.astype(np.uint8) * 255


def _row(item: Item, dataset: str, masks_dir: Path) -> dict[str, object]:
    image = open_image(item.image)
    if image.mode in HIGH_BIT_MODES:  # the only modes whose values can be out of range
        to_gray8(image, item.image)  # pixel values every stage can read, or one sentence now
    size = image.size
    mask_path, finding = None, None
    if item.masks:
        mask_path = masks_dir / f"{item.id}.png"
        merged = merged_mask(item, size)
        finding = mask_finding(item.label, merged)
        write_png(merged, mask_path)
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
        "mask_finding": finding,
    }


def mask_finding(label: str, mask: np.ndarray) -> str | None:
    """Why a merged mask contradicts its image's label, or None when it agrees (or no class)."""
    if label in LESION_CLASSES and not mask.any():
        return f"empty mask on a {label} image"
    if label == "normal" and mask.any():
        return "lesion in the mask of a normal image"
    return None


def apply_mask_check(table: pd.DataFrame, check: MaskCheck) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest rows `check.mask_label` keeps, and the findings (with the action taken).

    stop: any finding stops naming the images; drop: those images leave the manifest;
    keep: they stay. Either way the findings are returned for the curation report.
    """
    if check.mask_label not in MASK_POLICIES:
        raise MeddapError(
            f"config key curation.mask_label must be one of {MASK_POLICIES}, "
            f"got {check.mask_label!r}"
        )
    found = table["mask_finding"].notna()
    flagged = table[found]
    if len(flagged) and check.mask_label == "stop":
        listed = "; ".join(f"{r.image_path} ({r.mask_finding})" for r in flagged.itertuples())
        raise MeddapError(
            f"{len(flagged)} image(s) have masks that contradict their label: {listed} "
            "(config key curation.mask_label: stop; 'drop' or 'keep' reports them instead)"
        )
    action = "dropped" if check.mask_label == "drop" else "kept"
    findings = flagged.rename(columns={"mask_finding": "finding"}).assign(action=action)
    kept = table[~found] if check.mask_label == "drop" else table
    return kept.reset_index(drop=True), findings[FINDING_COLUMNS].reset_index(drop=True)


def _stem(item: Item) -> str:
    """The image's file name without extension in Unicode form NFC (macOS may store NFD)."""
    return unicodedata.normalize("NFC", item.image.stem)


def unique_ids(items: list[Item]) -> list[Item]:
    """Items whose id is empty, or shared by differently named images, get a short hash suffix.

    `slug` keeps only a-z and 0-9, so non-Latin names collide (`乳腺 1.png` and `超声 1.png` both
    give '1') or give ''. Those ids get '_' and the first 8 hex digits of the sha256 of the
    image's file stem (NFC, UTF-8) appended ('1_504f08be' for `乳腺 1.png`; just the digits for
    an empty id).
    Non-empty ids of one name each (all of BUSI, BUS-BRA, UDIAT, BUS-UCLM, STU and the phantom)
    are unchanged.
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
            raise MeddapError(two_extensions(before.image, after.image))
        raise MeddapError(f"images {before.image} and {after.image} both get id {after.id!r}")


def _check_classes(items: list[Item], dataset: str, raw: Path) -> None:
    """A classifier needs two classes: stop when a labelled dataset holds images of only one.

    A dataset without classes (every label UNKNOWN: `stu`, for segmentation tests) passes.
    """
    found = sorted({item.label for item in items})
    if found == [UNKNOWN]:
        return
    if UNKNOWN in found:
        raise MeddapError(
            f"dataset {dataset!r} ({raw}) mixes images labelled {UNKNOWN!r} with labelled ones "
            "(expected every image or none to carry a class)"
        )
    if len(found) < 2:
        raise MeddapError(
            f"dataset {dataset!r} ({raw}) holds only {', '.join(found)} images: expected images "
            "of at least two of normal, benign and malignant"
        )


def _items(raw: Path, layout: str) -> list[Item]:
    reader = LAYOUTS.get(layout, "layout")
    if not raw.is_dir():
        what = "is not a folder" if raw.exists() else "does not exist"
        raise MeddapError(f"dataset folder {raw} {what}")
    items = sorted(unique_ids(reader.items(raw)), key=lambda item: item.id)
    if not items:
        raise MeddapError(f"no images found below {raw} ({layout} layout)")
    _check_ids(items)
    if reader.masked:
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
    for column in ("patient_id", "mask_finding"):
        table[column] = table[column].astype("string")
    return table


def ingest(
    *,
    raw: str,
    manifest: str,
    masks: str,
    findings: str,
    dataset: str,
    layout: str,
    mask_check: MaskCheck,
) -> None:
    """Job: write the manifest of dataset folder `raw`, its merged masks and the mask/label
    findings (`apply_mask_check`), atomically; a dropped image's mask is not kept."""
    final = Path(masks).resolve()
    with atomic_dir(masks) as tmp:
        table, found = apply_mask_check(build_manifest(Path(raw), dataset, layout, tmp), mask_check)
        for id_ in found.loc[found["action"] == "dropped", "id"]:
            (tmp / f"{id_}.png").unlink()
        table["mask_path"] = [
            None if p is None else str(final / Path(p).name) for p in table.mask_path
        ]
        write_parquet(found, findings)
        write_parquet(table, manifest)
