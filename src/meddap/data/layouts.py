"""Dataset release layouts: where each finds its images, masks, labels and patients.

Each reader takes the dataset folder and returns one `Item` per image; `meddap.data.ingest`
reads the items into the manifest. `LAYOUTS` registers each layout (the names config key
`datasets.<name>.layout` may hold) with its reader and what its release ships. A new layout is
its reader and one `register` call here. `config/README.md` describes every layout.
"""

from __future__ import annotations

import re
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from meddap.common.errors import MeddapError
from meddap.common.images import HIGH_BIT_MODES
from meddap.common.labels import CLASSES, UNKNOWN
from meddap.common.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_BUSI_NAME = re.compile(r"^(?P<base>(?P<cls>\w+) \(\d+\))(?:_mask(?:_\d+)?)?$")
_STU_NAME = re.compile(r"^(?:(?P<image>Test_Image)|mask)_(?P<n>\d+)$", re.IGNORECASE)
_UDIAT_WORDS = {"b": "benign", "m": "malignant", "malign": "malignant", "cancer": "malignant"}


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


def open_image(path: Path) -> Image.Image:
    """A fully decoded image (decoding is what finds truncated or corrupt files)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MeddapError(f"image {path} is unreadable or corrupt ({err})") from err
    return image


def two_extensions(first: Path, second: Path) -> str:
    """The error sentence for two images whose names differ only in the extension."""
    return (
        f"images {first} and {second} have the same name with two extensions "
        "(expected one image per name: remove or rename one)"
    )


def _label(value: object, source: Path, words: dict[str, str] | None = None) -> str:
    text = str(value).strip().lower()
    label = (words or {}).get(text, text)
    if label not in CLASSES:
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
        p for p in raw.rglob("*") if p.is_dir() and p.name.lower() in CLASSES and _visible(p, raw)
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


def _column(table: pd.DataFrame, path: Path, names: tuple[str, ...], expected: str) -> pd.Series:
    """The first column named one of `names` (any case, spaces around ignored), all filled."""
    by_name = {str(c).strip().lower(): c for c in table.columns}
    found = next((by_name[n] for n in names if n in by_name), None)
    if found is None:
        raise MeddapError(f"{path} lacks a column named {' or '.join(names)} (expected {expected})")
    if table[found].isna().any():
        raise MeddapError(f"{path} has empty cells in column {found}")
    return table[found]


def _find_one(raw: Path, name: str, hint: str = "") -> Path:
    found = sorted(p for p in raw.rglob(name) if _visible(p, raw))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} files named"
        raise MeddapError(f"{what} {name} found below {raw}{hint}")
    return found[0]


def _orphan_masks(mask_dir: Path, used: Iterable[Path]) -> None:
    orphans = sorted(set(_images(mask_dir, "*")) - set(used))
    if orphans:
        raise MeddapError(f"mask {orphans[0]} has no image")


def _unused_rows(rows: Iterable[str], used: Iterable[str], source: Path, folder: Path) -> None:
    unused = sorted(set(rows) - set(used))
    if unused:
        raise MeddapError(
            f"{source} has a row for image {unused[0]} but {folder} has no such image"
        )


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
            raise MeddapError(two_extensions(images[match["base"]], path))
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
    return next((raw / p for p in inside if p.name.lower() in CLASSES), None)


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


def _udiat_key(value: object) -> str:
    """An image number as UDIAT's xlsx or file names give it: '1', 1.0, '000001.png' -> '1'."""
    text = str(value).strip()
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        text = Path(text).stem
    return str(int(float(text))) if re.fullmatch(r"\d+(\.0*)?", text) else text.lower()


def _udiat_table(folder: Path) -> tuple[Path, pd.DataFrame]:
    """`labels.csv` beside original/ if present, else the one `.xlsx` there (DatasetB.xlsx)."""
    csv = folder / "labels.csv"
    if csv.is_file():
        return csv, pd.read_csv(csv, dtype=str)
    books = sorted(p for p in folder.glob("*.xlsx") if not p.name.startswith(("~$", ".")))
    if len(books) != 1:
        found = "no .xlsx file" if not books else f"{len(books)} .xlsx files"
        raise MeddapError(
            f"{folder} holds {found} beside original/ (expected UDIAT's DatasetB.xlsx with "
            "columns Image and Type, or a labels.csv with columns image and label)"
        )
    try:
        table = pd.read_excel(books[0], sheet_name=0, dtype=str, engine="openpyxl")
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise MeddapError(f"{books[0]} could not be read as an Excel workbook ({err})") from err
    return books[0], table.dropna(how="all")


def _udiat_items(raw: Path) -> list[Item]:
    """udiat: Dataset B as released: `original/*.png`, `GT/*.png` of equal names, `DatasetB.xlsx`.

    The xlsx's first sheet has one row per image: column Image holds its number (1 for
    `000001.png`; zero padding and an extension are accepted too) and column Type its class
    (Benign or Malignant, any case; B, M and Cancer are read as benign, malignant, malignant).
    A `labels.csv` beside original/ (columns image and label) is used instead when present.
    """
    original = _find_one(raw, "original", " (expected original/, GT/ and DatasetB.xlsx)")
    source, table = _udiat_table(original.parent)
    expected = (
        "columns image and label"
        if source.suffix == ".csv"
        else "columns Image and Type, as in UDIAT's DatasetB.xlsx"
    )
    images = _column(table, source, ("image",), expected)
    types = _column(table, source, ("type", "label"), expected)
    labels: dict[str, str] = {}
    for image, label in zip(images, types, strict=True):
        if _udiat_key(image) in labels:
            raise MeddapError(f"{source} has two rows for image {image}")
        labels[_udiat_key(image)] = _label(label, source, _UDIAT_WORDS)
    items = []
    for image in _images(original, "*"):
        if _udiat_key(image.stem) not in labels:
            raise MeddapError(f"image {image} has no row in {source}")
        mask = original.parent / "GT" / image.name
        masks = (mask,) if mask.is_file() else ()
        items.append(Item(slug(image.stem), labels[_udiat_key(image.stem)], image, masks))
    _unused_rows(labels, (_udiat_key(item.image.stem) for item in items), source, original)
    _orphan_masks(original.parent / "GT", (m for item in items for m in item.masks))
    return items


def _find_pair(raw: Path, name: str, sibling: str) -> Path:
    """The one folder `name` below `raw` with a folder `sibling` beside it."""
    found = sorted(
        p
        for p in raw.rglob(name)
        if p.is_dir() and (p.parent / sibling).is_dir() and _visible(p, raw)
    )
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise MeddapError(f"{what} folders {name}/ with {sibling}/ beside them found below {raw}")
    return found[0]


def colour_label(mask: Path) -> str:
    """The class a BUS-UCLM mask paints: no lesion normal, green benign, red (anywhere) malignant.

    Lesion pixels are those `ingest.foreground` takes (brightest channel above 127); one whose
    red and green are both above 127, or both at most 127 (blue), stops naming the mask.
    """
    image = open_image(mask)
    if image.mode in HIGH_BIT_MODES:
        raise MeddapError(f"mask {mask} is {image.mode}, not an RGB mask (as BUS-UCLM's)")
    rgba = np.asarray(image.convert("RGBA")).astype(int)
    lesion = (rgba[..., :3].max(axis=2) > 127) & (rgba[..., 3] > 0)
    red, green = rgba[..., 0] > 127, rgba[..., 1] > 127
    if (lesion & (red == green)).any():
        raise MeddapError(
            f"mask {mask} has lesion pixels that are neither green nor red (expected BUS-UCLM's "
            "RGB masks: black background, green benign, red malignant)"
        )
    if (lesion & red).any():
        return "malignant"
    return "benign" if lesion.any() else "normal"


def _uclm_info(path: Path) -> dict[str, str]:
    """label per image stem from BUS-UCLM's `INFO.csv` (';'-separated, Image and Label), if any."""
    if not path.is_file():
        return {}
    header = path.read_text(encoding="utf-8-sig").partition("\n")[0]
    table = pd.read_csv(path, sep=";" if ";" in header else ",", dtype=str, encoding="utf-8-sig")
    expected = "columns Image and Label, as in BUS-UCLM's INFO.csv"
    images = _column(table, path, ("image",), expected)
    labels = _column(table, path, ("label",), expected)
    return {
        Path(str(image).strip()).stem: _label(label, path)
        for image, label in zip(images, labels, strict=True)
    }


def _bus_uclm_items(raw: Path) -> list[Item]:
    """bus_uclm: BUS-UCLM as released: `images/<PATIENT>_<N>.png`, `masks/` of equal names.

    The Mendeley zip (Vallez et al. 2025) holds `BUS-UCLM Breast ultrasound lesion segmentation
    dataset/BUS-UCLM/images` and `.../masks`; a name's prefix before '_' (`ALWI` of
    `ALWI_000.png`) is the patient. Each mask is RGB: black background, benign lesions green,
    malignant red, and gives the label (`colour_label`). An `INFO.csv` beside images/
    (columns Image and Label) is optional; when present its labels must agree with the masks.
    """
    images_dir = _find_pair(raw, "images", "masks")
    info_path = images_dir.parent / "INFO.csv"
    info = _uclm_info(info_path)
    items = []
    for image in _images(images_dir, "*"):
        patient, underscore, _ = image.stem.partition("_")
        if not (patient and underscore):
            raise MeddapError(f"image {image} is not named '<patient>_<N>.png' (as ALWI_000.png)")
        mask = images_dir.parent / "masks" / image.name
        if not mask.is_file():
            raise MeddapError(f"image {image} has no mask (missing mask)")
        label = colour_label(mask)
        if info and image.stem not in info:
            raise MeddapError(f"image {image} has no row in {info_path}")
        if info and info[image.stem] != label:
            raise MeddapError(
                f"{info_path} labels image {image.name} {info[image.stem]} but its mask {mask} "
                f"shows {label} (black normal, green benign, red malignant)"
            )
        items.append(Item(slug(image.stem), label, image, (mask,), patient))
    _unused_rows(info, (item.image.stem for item in items), info_path, images_dir)
    _orphan_masks(images_dir.parent / "masks", (m for item in items for m in item.masks))
    return items


def _stu_items(raw: Path) -> list[Item]:
    """stu: STU-Hospital as published: `Hospital/Test_Image_N.png` with mask `mask_N.png` beside.

    The images' folder is the one folder below `raw` holding `mask_N` files (the repository's
    other folders, such as demo/, hold none). The dataset has neither classes nor patients:
    every image is labelled `unknown` (UNKNOWN), for segmentation tests only.
    """
    folders = sorted({p.parent for p in _images(raw, "**/[mM][aA][sS][kK]_*") if _visible(p, raw)})
    if len(folders) != 1:
        what = "no folder" if not folders else f"{len(folders)} folders"
        raise MeddapError(f"{what} with STU-Hospital's mask_N.png files found below {raw}")
    images: dict[int, Path] = {}
    masks: dict[int, Path] = {}
    for path in _images(folders[0], "*"):
        match = _STU_NAME.match(path.stem)
        if not match:
            raise MeddapError(f"{path} is not named 'Test_Image_N.png' or 'mask_N.png'")
        kind, n = (images if match["image"] else masks), int(match["n"])
        if n in kind and kind[n].stem == path.stem:
            raise MeddapError(two_extensions(kind[n], path))
        if n in kind:
            raise MeddapError(f"{kind[n]} and {path} both have number {n}")
        kind[n] = path
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise MeddapError(
            f"mask {masks[orphans[0]]} has no image Test_Image_{orphans[0]} beside it"
        )
    return [
        Item(slug(path.stem), UNKNOWN, path, (masks[n],) if n in masks else ())
        for n, path in sorted(images.items())
    ]


def _bus_bra_folds(raw: Path, k: int) -> pd.Series:
    """BUS-BRA's official test folds: column kFold (1..k) of `<k>-fold-cv.csv` (k = 5 or 10)
    beside `bus_data.csv`, as fold 0..k-1 per image id.

    The file's valid_1..valid_k columns (1 train, 0 validation) are not used: they split
    patients between train and validation (242 times over the 5 folds of the 463-image subset).
    """
    csv = _find_one(raw, f"{k}-fold-cv.csv", " (config key folds.k: BUS-BRA ships 5 and 10 folds)")
    table = _read_csv(csv, ("ID", "kFold"))
    fold = table["kFold"].str.strip().str.replace(r"\.0+$", "", regex=True)
    bad = ~fold.isin([str(f) for f in range(1, k + 1)])
    if bad.any():
        raise MeddapError(f"{csv} row {table['ID'][bad].iloc[0]}: expected kFold 1-{k}")
    return pd.Series(fold.astype(int).to_numpy() - 1, index=table["ID"].map(slug).to_numpy())


@dataclass(frozen=True)
class Layout:
    """A release layout: its reader, whether it ships lesion masks and class labels (stu: every
    image UNKNOWN, segmentation tests only), its official folds reader and their counts k."""

    items: Callable[[Path], list[Item]]
    masked: bool = True
    labelled: bool = True
    folds: Callable[[Path, int], pd.Series] | None = None
    fold_counts: tuple[int, ...] = ()


LAYOUTS: Registry[Layout] = Registry("layouts", "datasets.<name>.layout")
LAYOUTS.register("busi", Layout(_busi_items))
LAYOUTS.register("class_folders", Layout(_class_folder_items, masked=False))
LAYOUTS.register("bus_bra", Layout(_bus_bra_items, folds=_bus_bra_folds, fold_counts=(5, 10)))
LAYOUTS.register("udiat", Layout(_udiat_items))
LAYOUTS.register("bus_uclm", Layout(_bus_uclm_items))
LAYOUTS.register("stu", Layout(_stu_items, labelled=False))


def check_release_folds(layout: str, k: int, key: str) -> Callable[[Path, int], pd.Series]:
    """The official folds reader of `layout`; stops unless it ships folds, and `k` of them
    (BUS-BRA: 5 or 10); `key` names what chose the layout."""
    release = LAYOUTS.get(layout, "layout")
    if release.folds is None:
        shipping = [n for n in LAYOUTS.names() if LAYOUTS.get(n, "layout").folds]
        raise MeddapError(
            f"config key '{key}': folds.source release needs a layout that ships folds "
            f"({', '.join(shipping)}), not {layout}"
        )
    if k not in release.fold_counts:
        counts = " and ".join(map(str, release.fold_counts))
        raise MeddapError(
            f"config key 'folds.k': the {layout} release ships {counts} folds, not {k}"
        )
    return release.folds
