"""Ingest: the real BUSI sample, the busi, class_folders, bus_bra and udiat (labels.csv) layouts,
and every bad-input error (the other release layouts: test_layouts.py)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from meddap.common.errors import MeddapError
from meddap.common.settings import MaskCheck
from meddap.data.ingest import COLUMNS, build_manifest, ingest

W, H = 24, 16


def _png(path: Path, value: int = 90, size: tuple[int, int] = (W, H), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value,) * len(mode)).save(path)


def _mask(path: Path, box: tuple[int, int, int, int] = (2, 2, 8, 6), size=(W, H)) -> None:
    array = np.zeros(size[::-1], dtype=np.uint8)
    array[box[1] : box[3], box[0] : box[2]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).convert("1").save(path)


def make_busi(root: Path, n: int = 2) -> Path:
    """A tiny BUSI folder: n images per class, one mask each, normal masks empty."""
    for label in ("benign", "malignant", "normal"):
        for i in range(1, n + 1):
            _png(root / label / f"{label} ({i}).png", value=10 * i)
            box = (0, 0, 0, 0) if label == "normal" else (2, 2, 8, 6)
            _mask(root / label / f"{label} ({i})_mask.png", box)
    return root


@pytest.fixture(scope="module")
def sample(busi_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The job function run once on the real sample folder's parent (class folders nested)."""
    out = tmp_path_factory.mktemp("busi")
    ingest(
        raw=str(busi_sample.parent),
        manifest=str(out / "manifest.parquet"),
        masks=str(out / "masks"),
        findings=str(out / "findings.parquet"),
        dataset="busi",
        layout="busi",
        mask_check=MaskCheck("stop"),  # the sample's masks all agree with their labels
    )
    return pd.read_parquet(out / "manifest.parquet")


def _merged(sample: pd.DataFrame, id_: str) -> np.ndarray:
    path = sample.set_index("id").loc[id_, "mask_path"]
    return np.asarray(Image.open(path))


def _source(busi_sample: Path, name: str) -> Image.Image:
    return Image.open(busi_sample / name.split(" ")[0] / name)


def test_sample_counts_columns_and_ids(sample: pd.DataFrame) -> None:
    assert list(sample.columns[: len(COLUMNS)]) == COLUMNS
    assert len(sample) == 23
    assert sample.label.value_counts().to_dict() == {"benign": 13, "malignant": 6, "normal": 4}
    assert sample.id.is_unique and list(sample.id) == sorted(sample.id)
    assert {"benign_195", "malignant_53", "normal_113"} <= set(sample.id)
    assert list(sample.id) == [  # ids of Latin names carry no hash
        re.sub(r"\W+", "_", Path(n).stem.lower()).strip("_") for n in sample.source_name
    ]
    assert sample.patient_id.isna().all() and (sample.dataset == "busi").all()


def test_sample_hashes_sizes_and_paths(sample: pd.DataFrame) -> None:
    for row in sample.itertuples():
        image = Path(row.image_path)
        assert image.is_absolute() and image.name == row.source_name
        assert row.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
        assert Image.open(image).size == (row.width, row.height)
        assert Path(row.mask_path).is_file() and Path(row.mask_path).parent.name == "masks"


def test_multiple_masks_are_merged_as_union(sample: pd.DataFrame, busi_sample: Path) -> None:
    names = ["benign (195)_mask.png", "benign (195)_mask_1.png", "benign (195)_mask_2.png"]
    parts = [np.asarray(_source(busi_sample, n).convert("L")) > 0 for n in names]
    merged = _merged(sample, "benign_195")
    assert merged.dtype == np.uint8 and set(np.unique(merged)) <= {0, 255}
    assert ((merged == 255) == np.logical_or.reduce(parts)).all()
    assert (merged == 255).sum() > max(p.sum() for p in parts)
    assert sample.set_index("id").loc["benign_195", "n_masks"] == 3


def test_rgba_mask_foreground_is_the_white_lesion(sample: pd.DataFrame, busi_sample: Path) -> None:
    rgba = np.asarray(_source(busi_sample, "benign (4)_mask_1.png"))
    assert rgba.shape[2] == 4 and (rgba[..., 3] == 255).all()  # opaque: alpha says nothing
    first = np.asarray(_source(busi_sample, "benign (4)_mask.png"))
    expected = first | (rgba[..., 0] == 255)
    merged = _merged(sample, "benign_4") == 255
    assert (merged == expected).all() and merged.mean() < 0.1


def test_normal_masks_are_empty(sample: pd.DataFrame) -> None:
    for id_ in sample.id[sample.label == "normal"]:
        assert not _merged(sample, id_).any()


def test_patients_csv_and_root_files(tmp_path: Path) -> None:
    raw = make_busi(tmp_path / "raw")
    (raw / "README.txt").write_text("notes")
    (raw / "patients.csv").write_text("image,patient_id\nbenign/benign (1).png,P7\n")
    table = build_manifest(raw, "phantom", "busi", tmp_path / "masks").set_index("id")
    assert table.loc["benign_1", "patient_id"] == "P7"
    assert pd.isna(table.loc["benign_2", "patient_id"]) and len(table) == 6


def test_patients_csv_naming_unknown_image(tmp_path: Path) -> None:
    raw = make_busi(tmp_path / "raw")
    (raw / "patients.csv").write_text("image,patient_id\nbenign/benign (9).png,P1\n")
    with pytest.raises(MeddapError, match=r"patients.csv names image .*benign \(9\)"):
        build_manifest(raw, "x", "busi", tmp_path / "masks")


def test_class_folders_layout(tmp_path: Path) -> None:
    raw = tmp_path / "normal" / "raw"  # class names above `raw` do not count
    _png(raw / "train" / "Benign" / "a.jpg")
    _png(raw / "test" / "benign" / "a.png")
    _png(raw / "test" / "malignant" / "deep" / "b c.bmp")
    _png(raw / "test" / "malignant" / "b_mask.png")
    table = build_manifest(raw, "stu", "class_folders", tmp_path / "masks")
    assert list(table.id) == ["test_benign_a", "test_malignant_deep_b_c", "train_benign_a"]
    assert list(table.label) == ["benign", "malignant", "benign"]
    assert table.mask_path.isna().all() and (table.n_masks == 0).all()


def test_class_folders_same_stem_with_two_extensions_names_both(tmp_path: Path) -> None:
    _png(tmp_path / "raw" / "benign" / "benign (2).png")
    _png(tmp_path / "raw" / "benign" / "benign (2).jpg")
    _png(tmp_path / "raw" / "malignant" / "m.png")
    with pytest.raises(MeddapError, match=r"\(2\)\.jpg and .*\(2\)\.png have the same name"):
        build_manifest(tmp_path / "raw", "x", "class_folders", tmp_path / "masks")


def _hash8(stem: str) -> str:
    return hashlib.sha256(stem.encode()).hexdigest()[:8]


def test_non_latin_names_get_unique_non_empty_ids(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for name in ("乳腺 1.png", "超声 1.png", "2.png"):
        _png(raw / "benign" / name)
    _png(raw / "malignant" / "m.png")
    table = build_manifest(raw, "cn", "class_folders", tmp_path / "masks").set_index("source_name")
    assert table.id.to_dict() == {  # colliding stems: class_folders ids are relative paths
        "乳腺 1.png": f"benign_1_{_hash8('乳腺 1')}",
        "超声 1.png": f"benign_1_{_hash8('超声 1')}",
        "2.png": "benign_2",
        "m.png": "malignant_m",
    }
    empty = tmp_path / "empty"
    _png(empty / "benign" / "恶性.png")
    _png(empty / "malignant" / "m.png")
    table = build_manifest(empty, "cn", "class_folders", tmp_path / "masks2")
    assert list(table.id) == sorted([_hash8("恶性"), "m"])
    # a collision that remains (a file named like a hashed id) stops naming both files
    _png(raw / "benign" / f"1_{_hash8('乳腺 1')}.png")
    with pytest.raises(MeddapError, match=r"images .* and .* both get id 'benign_1_") as err:
        build_manifest(raw, "cn", "class_folders", tmp_path / "masks3")
    assert f"1_{_hash8('乳腺 1')}.png" in str(err.value) and "乳腺 1.png" in str(err.value)


def test_bus_bra_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "BUSBRA"
    rows = "ID,Pathology,Case\nbus_0001-l,benign,1\nbus_0002-r,Malignant,2\n"
    (raw / "Images").mkdir(parents=True)
    (raw / "bus_data.csv").write_text(rows)
    for id_ in ("0001-l", "0002-r"):
        _png(raw / "Images" / f"bus_{id_}.png", mode="L")
        _mask(raw / "Masks" / f"mask_{id_}.png")
    table = build_manifest(tmp_path / "raw", "bus_bra", "bus_bra", tmp_path / "masks")
    assert list(table.id) == ["bus_0001_l", "bus_0002_r"]
    assert list(table.label) == ["benign", "malignant"] and list(table.patient_id) == ["1", "2"]
    assert (np.asarray(Image.open(table.mask_path[0])) == 255).sum() == 24


def test_udiat_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for name in ("000001.png", "000002.png"):
        _png(raw / "original" / name)
        _mask(raw / "GT" / name)
    (raw / "labels.csv").write_text("image,label\n000001,Benign\n000002.png,malignant\n")
    table = build_manifest(raw, "udiat", "udiat", tmp_path / "masks")
    assert list(table.id) == ["000001", "000002"] and list(table.label) == ["benign", "malignant"]


def _corrupt(raw: Path) -> None:
    (raw / "benign" / "benign (1).png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")


def _truncated(raw: Path) -> None:
    path = raw / "malignant" / "malignant (2).png"
    path.write_bytes(path.read_bytes()[:60])


def _size_mismatch(raw: Path) -> None:
    _mask(raw / "benign" / "benign (2)_mask_1.png", size=(W + 1, H))


def _missing_mask(raw: Path) -> None:
    (raw / "malignant" / "malignant (1)_mask.png").unlink()


def _orphan_mask(raw: Path) -> None:
    _mask(raw / "normal" / "normal (7)_mask.png")


def _empty_class(raw: Path) -> None:
    for path in (raw / "normal").iterdir():
        path.unlink()


def _no_class_folders(raw: Path) -> None:
    for label in ("benign", "malignant", "normal"):
        (raw / label).rename(raw / f"{label}_x")


def _bad_name(raw: Path) -> None:
    _png(raw / "benign" / "scan 3.png")


def _two_extensions(raw: Path) -> None:
    _png(raw / "benign" / "benign (2).jpg")


def _one_class(raw: Path) -> None:
    for label in ("malignant", "normal"):
        for path in (raw / label).iterdir():
            path.unlink()
        (raw / label).rmdir()


ERRORS: list[tuple[Callable[[Path], None], str]] = [
    (_corrupt, r"image .*benign \(1\)\.png is unreadable or corrupt"),
    (_truncated, r"image .*malignant \(2\)\.png is unreadable or corrupt"),
    (_size_mismatch, r"mask .*benign \(2\)_mask_1\.png is 25x16 but its image .* is 24x16"),
    (_missing_mask, r"image .*malignant \(1\)\.png has no mask \(missing mask\)"),
    (_orphan_mask, r"mask .*normal \(7\)_mask\.png has no image"),
    (_empty_class, r"class folder .*normal has no images"),
    (_no_class_folders, r"no benign, malignant or normal folder found below"),
    (_bad_name, r"scan 3\.png is not named 'benign \(N\)\.png'"),
    (
        _two_extensions,
        r"images .*benign \(2\)\.jpg and .*benign \(2\)\.png have the same name with two ext",
    ),
    (_one_class, r"dataset 'busi' \(.*raw\) holds only benign images: expected .* at least two"),
]


@pytest.mark.parametrize(("breaks", "message"), ERRORS, ids=[f.__name__ for f, _ in ERRORS])
def test_bad_busi_folder_leaves_nothing(
    tmp_path: Path, breaks: Callable[[Path], None], message: str
) -> None:
    raw = make_busi(tmp_path / "raw")
    breaks(raw)
    out = tmp_path / "out"
    with pytest.raises(MeddapError, match=message):
        _ingest(raw, out, "drop")
    assert not out.exists() or not any(out.iterdir())


def test_unknown_label_and_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _png(raw / "original" / "000001.png")
    (raw / "labels.csv").write_text("image,label\n000001,cyst\n")
    with pytest.raises(MeddapError, match=r"labels\.csv has unknown label 'cyst'"):
        build_manifest(raw, "udiat", "udiat", tmp_path / "masks")
    unknown = r"layout 'kvasir' is not one of the layouts of config key 'datasets\.<name>\.layout'"
    with pytest.raises(MeddapError, match=unknown + r" \(busi, "):
        build_manifest(raw, "x", "kvasir", tmp_path / "masks")


def _contradicting_busi(root: Path) -> Path:
    """A BUSI folder whose benign (1) has an empty mask and normal (2) a lesion."""
    make_busi(root)
    _mask(root / "benign" / "benign (1)_mask.png", (0, 0, 0, 0))
    _mask(root / "normal" / "normal (2)_mask.png")
    return root


def _ingest(raw: Path, out: Path, policy: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ingest(
        raw=str(raw),
        manifest=str(out / "manifest.parquet"),
        masks=str(out / "masks"),
        findings=str(out / "findings.parquet"),
        dataset="busi",
        layout="busi",
        mask_check=MaskCheck(policy),
    )
    return pd.read_parquet(out / "manifest.parquet"), pd.read_parquet(out / "findings.parquet")


@pytest.mark.parametrize("policy", ["drop", "keep"])
def test_masks_contradicting_labels_are_reported(tmp_path: Path, policy: str) -> None:
    table, findings = _ingest(_contradicting_busi(tmp_path / "raw"), tmp_path / "out", policy)
    assert findings.set_index("id")["finding"].to_dict() == {
        "benign_1": "empty mask on a benign image",
        "normal_2": "lesion in the mask of a normal image",
    }
    assert set(findings["action"]) == {"dropped" if policy == "drop" else "kept"}
    dropped = {"benign_1", "normal_2"}
    assert dropped.isdisjoint(table["id"]) == (policy == "drop") and len(table) == 6 - 2 * (
        policy == "drop"
    )
    masks = {p.stem for p in (tmp_path / "out" / "masks").iterdir()}
    assert masks == set(table["id"])  # a dropped image leaves no mask behind


def test_masks_contradicting_labels_stop_naming_them(tmp_path: Path) -> None:
    raw = _contradicting_busi(tmp_path / "raw")
    message = r"2 image\(s\) .*benign \(1\)\.png \(empty mask on a benign image\); .*normal \(2\)"
    with pytest.raises(MeddapError, match=message + r".*curation\.mask_label: stop"):
        _ingest(raw, tmp_path / "out", "stop")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
