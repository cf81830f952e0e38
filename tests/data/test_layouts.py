"""Release layouts: UDIAT (DatasetB.xlsx), BUS-UCLM and STU-Hospital as published, bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from meddap.common.errors import MeddapError
from meddap.common.labels import UNKNOWN
from meddap.common.splits import check_labels
from meddap.data.ingest import build_manifest
from meddap.data.layouts import LAYOUTS

REPO = Path(__file__).resolve().parents[2]
W, H = 20, 12
BOX = (2, 2, 8, 6)  # x0, y0, x1, y1: 24 lesion pixels
BLACK, GREEN, RED, WHITE = (0, 0, 0), (0, 255, 0), (255, 0, 0), (255, 255, 255)


def _png(path: Path, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (W, H), value).save(path)
    return path


def _mask(path: Path, colour: tuple[int, int, int] | None = WHITE, mode: str = "L") -> Path:
    """A mask with a lesion box of `colour` (None: no lesion) on black, saved in `mode`."""
    array = np.zeros((H, W, 3), dtype=np.uint8)
    if colour is not None:
        array[BOX[1] : BOX[3], BOX[0] : BOX[2]] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert(mode).save(path)
    return path


def _lesion_pixels(table: pd.DataFrame) -> list[int]:
    return [int((np.asarray(Image.open(p)) == 255).sum()) for p in table.mask_path]


# UDIAT Dataset B: BUS/original/000001.png, BUS/GT/000001.png, BUS/DatasetB.xlsx (Image, Type)


def make_udiat(root: Path, rows: list[tuple[object, object]] | None = None) -> Path:
    """Dataset B as released, three images; the xlsx as Yap et al. ship it (Image as a number)."""
    bus = root / "BUS"
    for name in ("000001.png", "000002.png", "000003.png"):
        _png(bus / "original" / name)
        _mask(bus / "GT" / name)
    rows = rows or [(1, "Benign"), (2, "Malignant"), (3, "Benign")]
    table = pd.DataFrame(rows, columns=["Image", "Type"])
    table.loc[table.Type.notna(), "Diagnosis"] = "CYST"  # the release's third column
    table.to_excel(bus / "DatasetB.xlsx", index=False)
    return bus


def test_udiat_release_reads_datasetb_xlsx(tmp_path: Path) -> None:
    make_udiat(tmp_path / "raw")
    table = build_manifest(tmp_path / "raw", "udiat", "udiat", tmp_path / "masks")
    assert list(table.id) == ["000001", "000002", "000003"]
    assert list(table.label) == ["benign", "malignant", "benign"]
    assert _lesion_pixels(table) == [24, 24, 24] and table.patient_id.isna().all()


def test_udiat_xlsx_variants_and_blank_rows(tmp_path: Path) -> None:
    rows = [(" 000001 ", "BENIGN"), ("2.png", "cancer"), (3.0, "b"), (None, None)]
    make_udiat(tmp_path / "raw", rows)
    table = build_manifest(tmp_path / "raw", "udiat", "udiat", tmp_path / "masks")
    assert list(table.label) == ["benign", "malignant", "benign"]


def test_udiat_labels_csv_is_used_instead_of_the_xlsx(tmp_path: Path) -> None:
    bus = make_udiat(tmp_path / "raw")
    (bus / "labels.csv").write_text("image,label\n000001,malignant\n2,benign\n000003.png,benign\n")
    table = build_manifest(tmp_path / "raw", "udiat", "udiat", tmp_path / "masks")
    assert list(table.label) == ["malignant", "benign", "benign"]


def _no_xlsx(bus: Path) -> None:
    (bus / "DatasetB.xlsx").unlink()


def _two_xlsx(bus: Path) -> None:
    (bus / "Copy.xlsx").write_bytes((bus / "DatasetB.xlsx").read_bytes())


def _corrupt_xlsx(bus: Path) -> None:
    (bus / "DatasetB.xlsx").write_bytes(b"PK\x03\x04 not a workbook")


def _no_type_column(bus: Path) -> None:
    pd.DataFrame({"Image": [1, 2, 3], "Class": ["Benign"] * 3}).to_excel(bus / "DatasetB.xlsx")


def _write(rows: list[tuple[object, object]]) -> Callable[[Path], None]:
    def write(bus: Path) -> None:
        pd.DataFrame(rows, columns=["Image", "Type"]).to_excel(bus / "DatasetB.xlsx", index=False)

    write.__name__ = "rows"
    return write


UDIAT_ERRORS = [
    (_no_xlsx, r"BUS holds no \.xlsx file beside original/ \(expected UDIAT's DatasetB\.xlsx"),
    (_two_xlsx, r"BUS holds 2 \.xlsx files beside original/"),
    (_corrupt_xlsx, r"DatasetB\.xlsx could not be read as an Excel workbook"),
    (_no_type_column, r"DatasetB\.xlsx lacks a column named type or label \(expected columns Im"),
    (_write([(1, "Benign"), (2, "Cyst"), (3, "Benign")]), r"xlsx has unknown label 'Cyst'"),
    (_write([(1, "Benign"), (2, "Benign")]), r"image .*000003\.png has no row in .*B\.xlsx"),
    (
        _write([(1, "Benign"), (2, "Benign"), (3, "Benign"), (4, "Malignant")]),
        r"DatasetB\.xlsx has a row for image 4 but .*original has no such image",
    ),
    (_write([(1, "Benign"), ("000001", "Benign")]), r"DatasetB\.xlsx has two rows for image 0+1"),
    (_write([(1, "Benign"), (2, None), (3, "Benign")]), r"xlsx has empty cells in column Type"),
    (_write([(1, "Benign"), (2, "Benign"), (3, "Benign")]), r"holds only benign images"),
]


@pytest.mark.parametrize(("breaks", "message"), UDIAT_ERRORS)
def test_bad_udiat_release(tmp_path: Path, breaks: Callable[[Path], None], message: str) -> None:
    breaks(make_udiat(tmp_path / "raw"))
    with pytest.raises(MeddapError, match=message):
        build_manifest(tmp_path / "raw", "udiat", "udiat", tmp_path / "masks")


# BUS-UCLM: <zip folder>/BUS-UCLM/images/ALWI_000.png, .../masks/ALWI_000.png (RGB), INFO.csv

UCLM_IMAGES = {"ALWI_000": None, "ALWI_001": GREEN, "BEMA_000": RED, "BEMA_001": None}
UCLM_INFO = "Image;Label;Resolution\n" + "".join(
    f"{name}.png;{label};{W}x{H}\n"
    for name, label in zip(UCLM_IMAGES, ["Normal", "Benign", "Malignant", "Normal"], strict=True)
)


def make_bus_uclm(root: Path, info: str | None = UCLM_INFO) -> Path:
    """BUS-UCLM as in the Mendeley zip: RGB masks, black normal, green benign, red malignant."""
    home = root / "BUS-UCLM Breast ultrasound lesion segmentation dataset" / "BUS-UCLM"
    for name, colour in UCLM_IMAGES.items():
        _png(home / "images" / f"{name}.png")
        _mask(home / "masks" / f"{name}.png", colour, mode="RGB")
    if info is not None:
        (home / "INFO.csv").write_text(info)
    return home


@pytest.mark.parametrize("info", [UCLM_INFO, None], ids=["with_info_csv", "masks_only"])
def test_bus_uclm_release(tmp_path: Path, info: str | None) -> None:
    make_bus_uclm(tmp_path / "raw", info)
    table = build_manifest(tmp_path / "raw", "bus_uclm", "bus_uclm", tmp_path / "masks")
    assert list(table.id) == ["alwi_000", "alwi_001", "bema_000", "bema_001"]
    assert list(table.label) == ["normal", "benign", "malignant", "normal"]
    assert list(table.patient_id) == ["ALWI", "ALWI", "BEMA", "BEMA"]
    assert _lesion_pixels(table) == [0, 24, 24, 0]  # green and red lesions are foreground


def _info(text: str) -> Callable[[Path], None]:
    def write(home: Path) -> None:
        (home / "INFO.csv").write_text(text)

    write.__name__ = "info"
    return write


def _white_lesion(home: Path) -> None:
    _mask(home / "masks" / "ALWI_001.png", WHITE, mode="RGB")


def _both_colours(home: Path) -> None:  # a red lesion anywhere makes the image malignant
    array = np.asarray(Image.open(home / "masks" / "ALWI_001.png")).copy()
    array[9:11, 12:16] = RED
    Image.fromarray(array).save(home / "masks" / "ALWI_001.png")


def _no_masks_folder(home: Path) -> None:
    for path in (home / "masks").iterdir():
        path.unlink()
    (home / "masks").rmdir()


UCLM_ERRORS = [
    (_no_masks_folder, r"no folders images/ with masks/ beside them found below"),
    (lambda home: (home / "masks" / "BEMA_000.png").unlink(), r"BEMA_000\.png has no mask"),
    (lambda home: _mask(home / "masks" / "ZOE_9.png"), r"mask .*ZOE_9\.png has no image"),
    (lambda home: _png(home / "images" / "scan.png"), r"scan\.png is not named '<patient>_<N>"),
    (_white_lesion, r"ALWI_001\.png has lesion pixels that are neither green nor red"),
    (_both_colours, r"INFO\.csv labels image ALWI_001\.png benign but .* shows malignant"),
    (_info(UCLM_INFO.replace("Malignant", "Benign")), r"labels image BEMA_000\.png benign but"),
    (_info(UCLM_INFO.rsplit("B", 1)[0]), r"image .*BEMA_001\.png has no row in .*INFO\.csv"),
    (_info(UCLM_INFO + "CUPA_000.png;Normal;1x1\n"), r"row for image CUPA_000 but .*images has"),
    (_info(UCLM_INFO.replace("Label", "Kind")), r"INFO\.csv lacks a column named label"),
    (_info(UCLM_INFO.replace("Benign", "Cyst")), r"INFO\.csv has unknown label 'Cyst'"),
]


@pytest.mark.parametrize(("breaks", "message"), UCLM_ERRORS, ids=[m[:24] for _, m in UCLM_ERRORS])
def test_bad_bus_uclm_release(tmp_path: Path, breaks: Callable[[Path], None], message: str) -> None:
    breaks(make_bus_uclm(tmp_path / "raw"))
    with pytest.raises(MeddapError, match=message):
        build_manifest(tmp_path / "raw", "bus_uclm", "bus_uclm", tmp_path / "masks")


# STU-Hospital: STU-Hospital-master/Hospital/Test_Image_N.png with mask_N.png beside


def make_stu(root: Path, n: int = 3) -> Path:
    """The GitHub repository's folders: Hospital/ with images and masks, demo/ with images only."""
    hospital = root / "STU-Hospital-master" / "Hospital"
    for i in range(1, n + 1):
        _png(hospital / f"Test_Image_{i}.png", value=30 * i)
        _mask(hospital / f"mask_{i}.png")
    _png(root / "STU-Hospital-master" / "demo" / "Test_Image_10.png")
    _png(root / "STU-Hospital-master" / "demo" / "360截图1622042011599142.png")
    return hospital


def test_stu_release_is_unlabelled_and_masked(tmp_path: Path) -> None:
    make_stu(tmp_path / "raw")
    table = build_manifest(tmp_path / "raw", "stu", "stu", tmp_path / "masks")
    assert list(table.id) == ["test_image_1", "test_image_2", "test_image_3"]
    assert (table.label == UNKNOWN).all() and table.patient_id.isna().all()
    assert _lesion_pixels(table) == [24, 24, 24] and (table.n_masks == 1).all()
    with pytest.raises(MeddapError, match=r"has labels \['unknown'\] outside"):
        check_labels(table, "stu manifest")  # classifier stages stop on an unlabelled set


STU_ERRORS = [
    (lambda h: (h / "mask_2.png").unlink(), r"Test_Image_2\.png has no mask \(missing mask\)"),
    (lambda h: _mask(h / "mask_7.png"), r"mask .*mask_7\.png has no image Test_Image_7 beside"),
    (lambda h: _png(h / "notes.png"), r"notes\.png is not named 'Test_Image_N\.png' or 'mask_N"),
    (lambda h: _png(h / "Test_Image_1.jpg"), r"Test_Image_1\.jpg and .*Test_Image_1\.png have"),
    (lambda h: _png(h / "Test_Image_01.png"), r"Test_Image_01\.png and .* both have number 1"),
    (lambda h: _mask(h.parent / "demo" / "mask_10.png"), r"2 folders with STU-Hospital's mask"),
]


@pytest.mark.parametrize(("breaks", "message"), STU_ERRORS, ids=[m[:20] for _, m in STU_ERRORS])
def test_bad_stu_release(tmp_path: Path, breaks: Callable[[Path], None], message: str) -> None:
    breaks(make_stu(tmp_path / "raw"))
    with pytest.raises(MeddapError, match=message):
        build_manifest(tmp_path / "raw", "stu", "stu", tmp_path / "masks")


def test_stu_without_masks_names_the_expected_files(tmp_path: Path) -> None:
    _png(tmp_path / "raw" / "Test_Image_1.png")
    with pytest.raises(MeddapError, match=r"no folder with STU-Hospital's mask_N\.png files"):
        build_manifest(tmp_path / "raw", "stu", "stu", tmp_path / "masks")


def test_the_default_registry_names_registered_layouts() -> None:
    registry = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]
    assert {entry["layout"] for entry in registry.values()} <= set(LAYOUTS.names())
    assert registry["stu"]["layout"] == "stu" and registry["bus_uclm"]["layout"] == "bus_uclm"
